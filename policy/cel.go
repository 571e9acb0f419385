package policy

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubegate/kubegate/k8swire"
)

// celCostLimit bounds the work one evaluation may do, in CEL cost units
// (the per-call limit Kubernetes uses for admission expressions). An
// expression that exceeds it fails, and so denies.
const celCostLimit = 1_000_000

// The CEL variables.
const (
	varRequest   = "request"
	varUser      = "user"
	varObject    = "object"
	varPatchType = "patchType"
)

// newCELEnv declares the variables and functions rule expressions see; the
// package documentation describes them.
func newCELEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varRequest, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varUser, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varObject, cel.DynType),
		cel.Variable(varPatchType, cel.StringType),
		cel.Function("kubegate.privileged",
			cel.Overload("kubegate_privileged_dyn", []*cel.Type{cel.DynType}, cel.BoolType,
				cel.UnaryBinding(celPrivileged))),
		cel.Function("kubegate.privilegedReasons",
			cel.Overload("kubegate_privileged_reasons_dyn", []*cel.Type{cel.DynType}, cel.ListType(cel.StringType),
				cel.UnaryBinding(celPrivilegedReasons))),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		ext.Sets(),
	)
}

// expression is a compiled rule expression.
type expression struct {
	prog cel.Program
	// needsObject says the expression reads object, so the body must be
	// decoded before it runs.
	needsObject bool
}

func compileExpression(env *cel.Env, src string) (expression, error) {
	ast, iss := env.Compile(src)
	if err := iss.Err(); err != nil {
		return expression{}, err
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return expression{}, fmt.Errorf("expression evaluates to %s, not bool", t)
	}
	prog, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(celCostLimit))
	if err != nil {
		return expression{}, err
	}
	x := expression{prog: prog}
	for _, r := range ast.NativeRep().ReferenceMap() {
		if r.Name == varObject && len(r.OverloadIDs) == 0 {
			x.needsObject = true
		}
	}
	return x, nil
}

// eval runs the expression; an error or a result that is not a bool is an
// error.
func (x expression) eval(act interpreter.Activation) (bool, error) {
	out, _, err := x.prog.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression evaluated to %s, not bool", out.Type().TypeName())
	}
	return b, nil
}

// activation resolves the CEL variables for one decision, building each
// the first time an expression asks for it.
type activation struct {
	in      Input
	object  any
	request map[string]any
	user    map[string]any
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varRequest:
		if a.request == nil {
			a.request = requestValue(&a.in.Request)
		}
		return a.request, true
	case varUser:
		if a.user == nil {
			a.user = userValue(&a.in.Subject)
		}
		return a.user, true
	case varObject:
		if a.object == nil {
			return types.NullValue, true
		}
		return a.object, true
	case varPatchType:
		return patchTypeOf(a.in.ContentType), true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// requestValue is CEL's request. stream is always there; its fields are
// zero for requests that are not exec, attach or portforward.
func requestValue(r *k8swire.Request) map[string]any {
	stream := map[string]any{
		"container": "",
		"command":   []string{},
		"stdin":     false,
		"stdout":    false,
		"stderr":    false,
		"tty":       false,
		"ports":     []int64{},
	}
	if s := r.Stream; s != nil {
		ports := make([]int64, len(s.Ports))
		for i, p := range s.Ports {
			ports[i] = int64(p)
		}
		command := s.Command
		if command == nil {
			command = []string{}
		}
		stream["container"] = s.Container
		stream["command"] = command
		stream["stdin"] = s.Stdin
		stream["stdout"] = s.Stdout
		stream["stderr"] = s.Stderr
		stream["tty"] = s.TTY
		stream["ports"] = ports
	}
	return map[string]any{
		"verb":              r.Verb,
		"apiGroup":          r.APIGroup,
		"apiVersion":        r.APIVersion,
		"resource":          r.Resource,
		"subresource":       r.Subresource,
		"namespace":         r.Namespace,
		"name":              r.Name,
		"path":              r.Path,
		"isResourceRequest": r.IsResourceRequest,
		"upgrade":           string(r.Upgrade),
		"stream":            stream,
	}
}

// userValue is CEL's user.
func userValue(s *Subject) map[string]any {
	groups := s.Groups
	if groups == nil {
		groups = []string{}
	}
	extra := s.Extra
	if extra == nil {
		extra = map[string][]string{}
	}
	return map[string]any{"name": s.User, "uid": s.UID, "groups": groups, "extra": extra}
}

func celPrivileged(v ref.Val) ref.Val {
	obj, err := nativeValue(v)
	if err != nil {
		return types.WrapErr(err)
	}
	return types.Bool(isPrivileged(obj))
}

func celPrivilegedReasons(v ref.Val) ref.Val {
	obj, err := nativeValue(v)
	if err != nil {
		return types.WrapErr(err)
	}
	reasons := PrivilegedReasons(obj)
	if reasons == nil {
		reasons = []string{}
	}
	return types.NewStringList(types.DefaultTypeAdapter, reasons)
}

var structValueType = reflect.TypeFor[*structpb.Value]()

// nativeValue turns a CEL value back into the plain Go form of a decoded
// body. The decoded body itself passes through untouched; values built in
// CEL go by way of their JSON form.
func nativeValue(v ref.Val) (any, error) {
	if v.Type() == types.NullType {
		return nil, nil
	}
	switch x := v.Value().(type) {
	case map[string]any, []any:
		return x, nil
	}
	pb, err := v.ConvertToNative(structValueType)
	if err != nil {
		return nil, err
	}
	sv, ok := pb.(*structpb.Value)
	if !ok {
		return nil, errors.New("cannot read value as JSON")
	}
	return sv.AsInterface(), nil
}
