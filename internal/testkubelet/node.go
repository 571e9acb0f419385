package testkubelet

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// Node registers itself with the apiserver and keeps the Pods bound to it
// running in its Runtime.
type Node struct {
	// Name is the Node's name. Required.
	Name string
	// Port is the port the kubelet server listens on, published as the
	// Node's kubelet endpoint. Required.
	Port int32
	// Client talks to the apiserver. Required.
	Client kubernetes.Interface
	// Runtime runs the Pods. Required.
	Runtime *Runtime
	// Log receives progress and errors. Required.
	Log *slog.Logger
}

// Run registers the Node and syncs Pods until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	if err := n.register(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(n.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", n.Name).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.sync(ctx, obj) },
		UpdateFunc: func(_, obj any) { n.sync(ctx, obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				n.Runtime.StopPod(pod.Namespace, pod.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	n.Runtime.StopAll()
	return nil
}

func (n *Node) register(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{"kubernetes.io/hostname": n.Name}}}
	created, err := n.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = n.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", n.Name, err)
	}
	now := metav1.NewTime(time.Now())
	created.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: n.Name}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: n.Port}},
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "test kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110"),
		},
		Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110"),
		},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2-testkubelet", OperatingSystem: "linux", Architecture: "amd64"},
	}
	if _, err := n.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting node %s status: %w", n.Name, err)
	}
	return nil
}

// sync starts a new Pod and reports it Running, or finishes a Pod being
// deleted, as a kubelet would (there is no other component to do it here).
func (n *Node) sync(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	log := n.Log.With("pod", pod.Namespace+"/"+pod.Name)
	if pod.DeletionTimestamp != nil {
		n.Runtime.StopPod(pod.Namespace, pod.Name)
		zero := int64(0)
		err := n.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			log.Error("finishing pod deletion", "err", err)
		}
		return
	}
	if n.Runtime.Running(pod.Namespace, pod.Name, string(pod.UID)) && pod.Status.Phase == corev1.PodRunning {
		return
	}
	if !n.Runtime.Running(pod.Namespace, pod.Name, string(pod.UID)) {
		if err := n.Runtime.StartPod(pod); err != nil {
			log.Error("starting pod", "err", err)
			return
		}
	}
	n.reportRunning(ctx, pod, log)
}

func (n *Node) reportRunning(ctx context.Context, pod *corev1.Pod, log *slog.Logger) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		latest, err := n.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if latest.UID != pod.UID || latest.DeletionTimestamp != nil {
			return nil
		}
		_, err = n.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, runningStatus(latest), metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		log.Error("reporting pod running", "err", err)
	}
}

// runningStatus returns a copy of pod with the status of a started Pod whose
// containers all run.
func runningStatus(pod *corev1.Pod) *corev1.Pod {
	now := metav1.NewTime(time.Now())
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	pod.Status.PodIP = "127.0.0.1"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	pod.Status.StartTime = &now
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: "testkubelet://" + string(pod.UID) + "/" + c.Name,
			Ready: true, Started: new(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return pod
}
