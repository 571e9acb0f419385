package policy

// DenyPrivilegedRule names the built-in rule that denies privileged
// workloads.
const DenyPrivilegedRule = "kubegate-deny-privileged"

// builtinRule is a built-in rule and, optionally, how it words its message
// from the decoded body.
type builtinRule struct {
	rule     Rule
	describe func(object any) string
}

// builtinRules are the rules Config.DefaultRules puts before the
// configured ones.
//
// kubegate-deny-privileged denies create, update and patch of the
// workload resources (pods, their ephemeralcontainers subresource,
// deployments, statefulsets, daemonsets, replicasets,
// replicationcontrollers, jobs, cronjobs, podtemplates) when
// kubegate.privileged(object) finds a privileged container, added
// capabilities, a host namespace or a hostPath volume (see
// PrivilegedReasons). Its message names the first finding. Since it reads
// the body, a body it cannot decode is denied.
func builtinRules() []builtinRule {
	return []builtinRule{{
		rule: Rule{
			Name:      DenyPrivilegedRule,
			Verbs:     []string{"create", "update", "patch"},
			APIGroups: []string{"", "apps", "batch", "extensions"},
			Resources: []string{
				"pods", "pods/ephemeralcontainers", "podtemplates", "replicationcontrollers",
				"deployments", "statefulsets", "daemonsets", "replicasets",
				"jobs", "cronjobs",
			},
			Expression: "kubegate.privileged(object)",
			Action:     Deny,
			Message:    "privileged workloads are not allowed",
		},
		describe: func(object any) string {
			reasons := PrivilegedReasons(object)
			if len(reasons) == 0 {
				return ""
			}
			return "privileged workloads are not allowed: " + reasons[0]
		},
	}}
}
