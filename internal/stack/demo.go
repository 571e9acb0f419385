package stack

import _ "embed"

// DemoPolicy is the sample policy `make demo` runs with.
//
//go:embed demo-policy.yaml
var DemoPolicy string
