// Package agentcred gives agents (CI runners, bots) the credential they
// present to kubegate: it reads a projected ServiceAccount token, or logs in
// to an OIDC provider with the resource-owner password grant and caches the
// ID token; it prints the token as a client-go exec plugin ExecCredential;
// and it writes a self-contained kubeconfig that runs `kubegate token` as
// that plugin.
//
// Secrets (passwords, client secrets) stay in files: a kubeconfig names the
// files and never holds their contents. Tokens are read for their expiry
// only and never verified here; kubegate verifies them.
package agentcred
