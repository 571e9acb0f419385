package testenv

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Secrets hygiene: tokens and secret values never reach kubegate's logs,
// audit events or recordings. The Env notes every token it mints (Dex ID
// tokens, service-account tokens, tokens written into kubeconfigs) and
// every value a test plants (NoteSecret), and every place kubegate writes
// to (NoteOutput: a node's directory, its log). CheckHygiene greps those
// places for each value and its base64 forms; Main runs it after the
// tests, so a hit anywhere in the suite fails the run.

// minSecretLen is the shortest value worth looking for: shorter ones
// (Dex's test passwords are long enough) would match by chance.
const minSecretLen = 12

type hygiene struct {
	mu      sync.Mutex
	secrets map[string]string // value → what it is, for the report
	outputs []string
}

// NoteSecret records a value (a token, a Secret's data) that must never
// appear in kubegate's outputs; what names it in a report, which never
// shows the value itself.
func (e *Env) NoteSecret(what, value string) {
	if len(value) < minSecretLen {
		return
	}
	e.hygiene.mu.Lock()
	defer e.hygiene.mu.Unlock()
	if e.hygiene.secrets == nil {
		e.hygiene.secrets = map[string]string{}
	}
	if _, ok := e.hygiene.secrets[value]; !ok {
		e.hygiene.secrets[value] = what
	}
}

// NoteOutput records a file or directory kubegate writes to: its log,
// audit events, recordings, spool, cluster state. In a directory,
// kubeconfigs and kubegate.yaml are the tests' inputs and are skipped.
func (e *Env) NoteOutput(path string) {
	e.hygiene.mu.Lock()
	defer e.hygiene.mu.Unlock()
	if !slices.Contains(e.hygiene.outputs, path) {
		e.hygiene.outputs = append(e.hygiene.outputs, path)
	}
}

// Leak is a secret found in an output.
type Leak struct {
	// What names the secret (see NoteSecret); never the value.
	What string
	// Form is how it appeared: "as is", "base64", "a JWT's signature".
	Form string
	// File is where.
	File string
}

func (l Leak) String() string { return fmt.Sprintf("%s found %s in %s", l.What, l.Form, l.File) }

// HygieneReport is what CheckHygiene looked at and found.
type HygieneReport struct {
	Secrets int      // values looked for
	Files   []string // files read
	Leaks   []Leak
}

// CheckHygiene greps every output noted so far (that still exists) for
// every secret noted so far.
func (e *Env) CheckHygiene() (HygieneReport, error) {
	e.hygiene.mu.Lock()
	outputs := slices.Clone(e.hygiene.outputs)
	secrets := make(map[string]string, len(e.hygiene.secrets))
	for v, what := range e.hygiene.secrets {
		secrets[v] = what
	}
	e.hygiene.mu.Unlock()
	return ScanForSecrets(outputs, secrets)
}

// ScanForSecrets greps the files under paths for each value of secrets
// (value → name) as it is, in base64 (standard and URL alphabets, at any
// alignment, so also inside a longer encoded blob), and, for a JWT, for
// its signature alone.
func ScanForSecrets(paths []string, secrets map[string]string) (HygieneReport, error) {
	type needle struct {
		what, form string
		b          []byte
	}
	var needles []needle
	for v, what := range secrets {
		for form, forms := range secretForms(v) {
			for _, f := range forms {
				needles = append(needles, needle{what, form, []byte(f)})
			}
		}
	}
	rep := HygieneReport{Secrets: len(secrets)}
	seen := map[string]bool{}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // removed by its test (a t.TempDir)
				}
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() || seen[path] || path != root && skipInput(d.Name()) {
				return nil
			}
			seen[path] = true
			b, err := os.ReadFile(path)
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			rep.Files = append(rep.Files, path)
			for _, n := range needles {
				if bytes.Contains(b, n.b) {
					rep.Leaks = append(rep.Leaks, Leak{What: n.what, Form: n.form, File: path})
				}
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	// One line per secret and file is enough.
	rep.Leaks = slices.CompactFunc(rep.Leaks, func(a, b Leak) bool { return a.What == b.What && a.File == b.File })
	return rep, nil
}

// skipInput reports files in an output directory that the tests wrote
// for kubegate: they hold tokens by design.
func skipInput(name string) bool {
	return strings.HasSuffix(name, ".kubeconfig") || name == "kubegate.yaml"
}

// secretForms are the strings that would give v away, by form.
func secretForms(v string) map[string][]string {
	forms := map[string][]string{"as is": {v}}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		forms["base64"] = append(forms["base64"], base64Cores(enc, []byte(v))...)
	}
	if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= minSecretLen {
		forms["a JWT's signature"] = []string{parts[2]}
	}
	return forms
}

// base64Cores are the parts of v's base64 encoding that do not depend on
// what comes before or after v, for each of the three alignments v can
// have in a longer encoded input.
func base64Cores(enc *base64.Encoding, v []byte) []string {
	var cores []string
	for off := range 3 {
		s := enc.EncodeToString(append(make([]byte, off), v...))
		// The first characters mix in the off bytes before v; the last
		// group mixes in what follows v (or padding).
		start := (off*8 + 5) / 6
		end := (off + len(v)) / 3 * 4
		if end-start >= minSecretLen {
			cores = append(cores, s[start:end])
		}
	}
	return cores
}
