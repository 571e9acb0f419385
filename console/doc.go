// Package console is kubegate's web console for approvers and auditors,
// served by the gateway itself under /ui/: pending access requests with
// live updates (server-sent events) and approve and deny buttons, live and
// recorded exec and attach sessions (watched, killed, replayed in
// asciinema-player), and the API timeline of an agent's session.
//
// People sign in through the configured OIDC identity provider with the
// authorization code flow and PKCE. The ID token is verified as the
// gateway verifies kubectl's tokens, so a console user is the same
// principal their kubectl is; the console keeps it server-side, behind a
// random session id in a Secure, HttpOnly, SameSite cookie, and every
// state change needs the session's CSRF token. Decisions are made by
// calling the gateway's own API on the user's behalf, so they are
// authorized, audited and notified exactly as `kubegate approve` is.
//
// Console sessions are kept in the memory of the node that signed the
// person in. The approvals page and the list of live sessions cover the
// whole cluster; recordings, live watching (which follows a recording as
// it is written) and API timelines read this node's disk.
//
// The pages are plain HTML, CSS and JavaScript embedded in the binary;
// asciinema-player comes from npm, pinned in web/package-lock.json, and is
// copied into ui/vendor/ by `make console-assets` before the build.
package console
