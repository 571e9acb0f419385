// Package policy decides what happens to a classified request: allow, deny,
// or hold for approval, by ordered rules with optional CEL expressions.
//
// Decisions are pure functions of the request, the principal and the rules.
package policy
