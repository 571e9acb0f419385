package k8swire

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// ContentTypeYAML is the media type of the YAML the apiserver serves for
// get and list (not for watches).
const ContentTypeYAML = "application/yaml"

// maskYAML masks a YAML body as JSON: the apiserver writes YAML by
// converting its JSON (sigs.k8s.io/yaml), so the body is converted back,
// masked by the JSON masker and converted again the same way. What the
// client gets is always the conversion of the JSON that was masked, never
// the original bytes (so nothing the conversion to JSON left out, such as
// a second document, can pass); for the apiserver's own YAML that is the
// same bytes when nothing is masked.
func (m *Masker) maskYAML(req *Request, rules []*maskRule, body []byte) ([]byte, bool, error) {
	j, err := yaml.YAMLToJSON(body)
	if err != nil {
		return nil, false, fmt.Errorf("%w: decoding YAML: %w", ErrUnmaskable, err)
	}
	masked, _, err := m.maskJSON(req, rules, j, false)
	if err != nil {
		return nil, false, err
	}
	out, err := yaml.JSONToYAML(masked)
	if err != nil {
		return nil, false, fmt.Errorf("%w: encoding YAML: %w", ErrUnmaskable, err)
	}
	if bytes.Equal(out, body) {
		return body, false, nil
	}
	return out, true, nil
}
