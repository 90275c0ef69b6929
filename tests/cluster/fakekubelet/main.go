// Command fakekubelet stands in for the kubelets (and, for pods without a node, the scheduler)
// of a test cluster: it registers Nodes and keeps their heartbeats, binds unscheduled pods,
// and reports bound pods Running and Ready after a delay, so that the upstream controllers
// (deployment, replicaset, statefulset, daemonset) decide rollouts on their own.
//
// It is OURS, not upstream code: it runs no containers. What it does to a pod:
//   - image containing "never-ready": Pending, container waiting in ImagePullBackOff (the
//     deployment controller then reports ProgressDeadlineExceeded by itself);
//   - annotation fake-kubelet.gitlab-operator.io/never-ready: "true": Running, not Ready;
//   - annotation fake-kubelet.gitlab-operator.io/ready-after: a Go duration overriding
//     --ready-after for that pod;
//   - a pod being deleted: removed at once (grace period 0), as a kubelet does once its
//     containers are gone.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

const (
	annoNeverReady = "fake-kubelet.gitlab-operator.io/never-ready"
	annoReadyAfter = "fake-kubelet.gitlab-operator.io/ready-after"
)

type kubelet struct {
	client     kubernetes.Interface
	nodes      []string
	readyAfter time.Duration
	pods       cache.Indexer
	queue      workqueue.TypedDelayingInterface[string]

	mu     sync.Mutex
	next   int
	podIPs map[string]string
	// first time each pod (by UID) was seen bound: readiness is measured from it.
	seen map[string]time.Time
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig (required)")
	nodes := flag.Int("nodes", 2, "how many Nodes to register")
	readyAfter := flag.Duration("ready-after", 500*time.Millisecond, "delay before a bound pod is Ready")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	k := &kubelet{
		client:     client,
		readyAfter: *readyAfter,
		queue:      workqueue.NewTypedDelayingQueue[string](),
		podIPs:     map[string]string{},
		seen:       map[string]time.Time{},
	}
	for i := 1; i <= *nodes; i++ {
		k.nodes = append(k.nodes, fmt.Sprintf("node-%d", i))
	}
	if err := k.registerNodes(ctx); err != nil {
		log.Fatalf("register nodes: %v", err)
	}
	go wait.UntilWithContext(ctx, k.heartbeat, 10*time.Second)

	// A resync every 5 s re-queues every pod: a pod whose event was handled while the cache
	// still held its predecessor of the same name (a StatefulSet pod) is looked at again.
	factory := informers.NewSharedInformerFactory(client, 5*time.Second)
	podInformer := factory.Core().V1().Pods().Informer()
	k.pods = podInformer.GetIndexer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		log.Fatalf("pod handler: %v", err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for w := 0; w < 8; w++ {
		go k.work(ctx)
	}
	log.Printf("fakekubelet: %d nodes, pods Ready after %s", len(k.nodes), k.readyAfter)
	<-ctx.Done()
	k.queue.ShutDown()
	os.Exit(0)
}

func (k *kubelet) registerNodes(ctx context.Context) error {
	for _, name := range k.nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"type": "fake-kubelet",
			}},
		}
		created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			created, err = k.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			return err
		}
		if err := k.nodeStatus(ctx, created); err != nil {
			return err
		}
	}
	return nil
}

func (k *kubelet) nodeStatus(ctx context.Context, node *corev1.Node) error {
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("10000"),
	}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Phase = corev1.NodeRunning
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: node.Name}}
	node.Status.NodeInfo.KubeletVersion = "fake"
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "fakekubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	_, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// heartbeat renews each Node's Lease and Ready condition so the node lifecycle controller
// keeps them Ready and untainted.
func (k *kubelet) heartbeat(ctx context.Context) {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	for _, name := range k.nodes {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			duration := int32(40)
			holder := name
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &now},
			}, metav1.CreateOptions{})
		} else if err == nil {
			lease.Spec.RenewTime = &now
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("lease %s: %v", name, err)
		}
		node, err := k.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			err = k.nodeStatus(ctx, node)
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("node %s: %v", name, err)
		}
	}
}

func (k *kubelet) work(ctx context.Context) {
	for {
		key, quit := k.queue.Get()
		if quit {
			return
		}
		if retry, err := k.sync(ctx, key); err != nil {
			if ctx.Err() == nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				log.Printf("pod %s: %v", key, err)
			}
			k.queue.AddAfter(key, 200*time.Millisecond)
		} else if retry > 0 {
			k.queue.AddAfter(key, retry)
		}
		k.queue.Done(key)
	}
}

func (k *kubelet) ours(node string) bool {
	for _, n := range k.nodes {
		if n == node {
			return true
		}
	}
	return false
}

// sync moves one pod a step further; a positive duration asks to be called again then.
func (k *kubelet) sync(ctx context.Context, key string) (time.Duration, error) {
	obj, exists, err := k.pods.GetByKey(key)
	if err != nil || !exists {
		return 0, err
	}
	pod := obj.(*corev1.Pod)
	pods := k.client.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		if pod.Spec.NodeName != "" && !k.ours(pod.Spec.NodeName) {
			return 0, nil
		}
		zero := int64(0)
		uid := pod.UID
		k.forget(pod)
		return 0, pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	}
	if pod.Spec.NodeName == "" {
		if pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName {
			return 0, nil
		}
		return 0, pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: k.pickNode(pod)},
		}, metav1.CreateOptions{})
	}
	if !k.ours(pod.Spec.NodeName) || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0, nil
	}
	want := k.status(pod)
	if podStatusEqual(&pod.Status, want) {
		return 0, nil
	}
	if wait := k.remaining(pod); wait > 0 && want.Phase == corev1.PodRunning && pod.Status.Phase == corev1.PodRunning {
		return wait, nil
	}
	updated := pod.DeepCopy()
	updated.Status = *want
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return 0, err
	}
	return k.remaining(pod), nil
}

func (k *kubelet) pickNode(pod *corev1.Pod) string {
	// DaemonSet pods name their node in a required node affinity on metadata.name.
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range term.MatchFields {
				if f.Key == "metadata.name" && len(f.Values) > 0 {
					return f.Values[0]
				}
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.next++
	return k.nodes[k.next%len(k.nodes)]
}

func (k *kubelet) readyDelay(pod *corev1.Pod) time.Duration {
	if v, ok := pod.Annotations[annoReadyAfter]; ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return k.readyAfter
}

func (k *kubelet) firstSeen(pod *corev1.Pod) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.seen[string(pod.UID)]
	if !ok {
		t = time.Now()
		k.seen[string(pod.UID)] = t
	}
	return t
}

func (k *kubelet) forget(pod *corev1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.seen, string(pod.UID))
	delete(k.podIPs, string(pod.UID))
}

func (k *kubelet) remaining(pod *corev1.Pod) time.Duration {
	if neverReady(pod) {
		return 0
	}
	left := time.Until(k.firstSeen(pod).Add(k.readyDelay(pod)))
	if left < 0 {
		return 0
	}
	return left
}

func (k *kubelet) podIP(pod *corev1.Pod) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	ip, ok := k.podIPs[string(pod.UID)]
	if !ok {
		n := len(k.podIPs) + 1
		ip = fmt.Sprintf("10.244.%d.%d", (n/250)%250, n%250+2)
		k.podIPs[string(pod.UID)] = ip
	}
	return ip
}

func neverReady(pod *corev1.Pod) bool {
	return pod.Annotations[annoNeverReady] == "true"
}

func imageNeverPulls(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if strings.Contains(c.Image, "never-ready") {
			return true
		}
	}
	return false
}

// status is what a kubelet would report now for the pod.
func (k *kubelet) status(pod *corev1.Pod) *corev1.PodStatus {
	started := metav1.NewTime(k.firstSeen(pod).Truncate(time.Second))
	s := pod.Status.DeepCopy()
	s.HostIP = "127.0.0.1"
	s.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	if s.StartTime == nil {
		s.StartTime = &started
	}
	s.QOSClass = corev1.PodQOSBestEffort
	pulling := imageNeverPulls(pod)
	ready := !pulling && !neverReady(pod) && k.remaining(pod) == 0
	if pulling {
		s.Phase = corev1.PodPending
		s.PodIP, s.PodIPs = "", nil
	} else {
		s.Phase = corev1.PodRunning
		ip := k.podIP(pod)
		s.PodIP = ip
		s.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	s.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image, Ready: ready}
		started := !pulling
		cs.Started = &started
		if pulling {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
		} else {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: *s.StartTime}
			cs.ContainerID = "fake://" + string(pod.UID) + "/" + c.Name
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	setCondition(s, corev1.PodScheduled, true, "")
	setCondition(s, corev1.PodInitialized, true, "")
	notReady := ""
	if !ready {
		notReady = "ContainersNotReady"
	}
	setCondition(s, corev1.ContainersReady, ready, notReady)
	setCondition(s, corev1.PodReady, ready, notReady)
	return s
}

func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, ok bool, reason string) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status != status {
				s.Conditions[i].Status = status
				s.Conditions[i].Reason = reason
				s.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: metav1.Now()})
}

func podStatusEqual(a, b *corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || len(a.ContainerStatuses) != len(b.ContainerStatuses) || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.ContainerStatuses {
		if a.ContainerStatuses[i].Ready != b.ContainerStatuses[i].Ready || a.ContainerStatuses[i].Image != b.ContainerStatuses[i].Image {
			return false
		}
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status {
			return false
		}
	}
	return true
}
