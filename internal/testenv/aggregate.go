package testenv

import (
	"context"
	"fmt"
	"reflect"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// aggregateClusterRoles fills the rules of aggregated ClusterRoles (admin,
// edit, view and the like) from the roles their selectors pick, once. The
// kube-controller-manager does this in a real cluster; the test cluster has
// none, and without it the built-in roles grant nothing.
func (e *Env) aggregateClusterRoles(ctx context.Context) error {
	// Aggregated roles can feed others (view into edit into admin), so
	// repeat until nothing changes.
	for range 5 {
		changed, err := e.aggregateOnce(ctx)
		if err != nil || !changed {
			return err
		}
	}
	return nil
}

func (e *Env) aggregateOnce(ctx context.Context) (bool, error) {
	roles := e.Client.RbacV1().ClusterRoles()
	all, err := roles.List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	changed := false
	for i := range all.Items {
		role := &all.Items[i]
		if role.AggregationRule == nil {
			continue
		}
		var rules []rbacv1.PolicyRule
		for _, sel := range role.AggregationRule.ClusterRoleSelectors {
			s, err := metav1.LabelSelectorAsSelector(&sel)
			if err != nil {
				return false, err
			}
			picked, err := roles.List(ctx, metav1.ListOptions{LabelSelector: s.String()})
			if err != nil {
				return false, err
			}
			for _, p := range picked.Items {
				if p.Name == role.Name {
					continue
				}
				for _, r := range p.Rules {
					if !containsRule(rules, r) {
						rules = append(rules, r)
					}
				}
			}
		}
		if reflect.DeepEqual(rules, role.Rules) {
			continue
		}
		role.Rules = rules
		if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
			return false, fmt.Errorf("aggregating cluster role %s: %w", role.Name, err)
		}
		changed = true
	}
	return changed, nil
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for _, x := range rules {
		if reflect.DeepEqual(x, r) {
			return true
		}
	}
	return false
}
