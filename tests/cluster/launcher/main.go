// Command launcher runs the pinned upstream control plane on loopback in the foreground:
// etcd, kube-apiserver (Node,RBAC authorization, the default admission plugins, service-account
// token signing), kube-controller-manager (every default controller, each with its own
// ServiceAccount's credentials) and the fake kubelet. It writes a cluster-admin kubeconfig,
// prints one line "ready" once a Deployment rolls out, and stops every child on SIGINT/SIGTERM,
// when its stdin reaches end of file (--watch-stdin: the parent that holds the pipe is gone),
// or when it dies itself (each child gets SIGKILL as its parent-death signal).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "where to write the cluster-admin kubeconfig (required)")
	dir := flag.String("dir", "", "state directory (etcd data, certificates, logs); default: a new temporary directory removed on exit")
	binDir := flag.String("bin", "", "directory of kube-apiserver, kube-controller-manager, etcd and fakekubelet (default: this program's)")
	port := flag.Int("port", 0, "kube-apiserver's secure port (default: a free one)")
	nodes := flag.Int("nodes", 2, "Nodes the fake kubelet registers")
	readyAfter := flag.Duration("ready-after", 500*time.Millisecond, "how long the fake kubelet takes to make a pod Ready")
	watchStdin := flag.Bool("watch-stdin", false, "stop when stdin reaches end of file (the parent holding it died)")
	verbose := flag.Bool("v", false, "copy the components' logs to stderr")
	lease := flag.String("lease", "", "shared-use lease file: stop once no process has held a shared flock on it for --idle (the test harness's per-binary cluster)")
	startLock := flag.String("start-lock", "", "with --lease: the lock file that processes joining the cluster hold while they join")
	idle := flag.Duration("idle", 10*time.Second, "with --lease: how long unused before stopping")
	maxLifetime := flag.Duration("max-lifetime", 0, "stop after this long whatever happens (0: never)")
	flag.Parse()
	if *kubeconfig == "" {
		log.Fatal("--kubeconfig PATH is required")
	}
	if *binDir == "" {
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		*binDir = filepath.Dir(self)
	}
	removeDir := false
	if *dir == "" {
		d, err := os.MkdirTemp("", "gdo-cluster-")
		if err != nil {
			log.Fatal(err)
		}
		*dir, removeDir = d, true
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	if *lease != "" {
		go stopWhenUnused(cancel, *lease, *startLock, *idle)
	}
	if *maxLifetime > 0 {
		go func() {
			time.Sleep(*maxLifetime)
			log.Printf("launcher: --max-lifetime %s reached, stopping", *maxLifetime)
			cancel()
		}()
	}
	c := &cluster{dir: *dir, bin: *binDir, verbose: *verbose}
	err := c.run(ctx, *kubeconfig, *port, *nodes, *readyAfter)
	cancel()
	c.stop()
	if removeDir {
		_ = os.RemoveAll(*dir)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatalf("launcher: %v (logs in %s)", err, *dir)
	}
}

type cluster struct {
	dir, bin string
	verbose  bool
	mu       sync.Mutex
	children []*child
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *cluster) run(ctx context.Context, kubeconfig string, port, nodes int, readyAfter time.Duration) error {
	start := time.Now()
	pki := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	if port == 0 {
		port = ports[2]
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := writePKI(pki); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	p := func(name string) string { return filepath.Join(pki, name) }
	if err := writeKubeconfig(kubeconfig, server, p("ca.crt"), p("admin.crt"), p("admin.key"), "kubernetes-admin"); err != nil {
		return err
	}
	kcmConfig := filepath.Join(c.dir, "controller-manager.kubeconfig")
	if err := writeKubeconfig(kcmConfig, server, p("ca.crt"), p("kcm.crt"), p("kcm.key"), "system:kube-controller-manager"); err != nil {
		return err
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := c.start(ctx, "etcd", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-url", etcdURL, "--listen-peer-url", fmt.Sprintf("http://127.0.0.1:%d", ports[1])); err != nil {
		return err
	}
	if err := c.start(ctx, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		// The `kubernetes` Service's endpoints may not be loopback addresses; nothing here
		// reaches the apiserver through that Service.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	); err != nil {
		return err
	}
	client, err := adminClient(kubeconfig)
	if err != nil {
		return err
	}
	if err := until(ctx, 120*time.Second, "kube-apiserver /readyz", func() error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%v %s", err, body)
		}
		return nil
	}); err != nil {
		return c.failed(err)
	}
	apiserverReady := time.Since(start)
	if err := c.start(ctx, "kube-controller-manager",
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig, "--authorization-kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"),
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--v=0",
	); err != nil {
		return err
	}
	if err := c.start(ctx, "fakekubelet", "--kubeconfig="+kubeconfig,
		fmt.Sprintf("--nodes=%d", nodes), "--ready-after="+readyAfter.String()); err != nil {
		return err
	}
	if err := until(ctx, 120*time.Second, "ServiceAccount default/default", func() error {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return c.failed(err)
	}
	if err := probeRollout(ctx, client); err != nil {
		return c.failed(err)
	}
	fmt.Fprintf(os.Stderr, "launcher: kube-apiserver %s ready after %s, the control plane after %s\n", server, apiserverReady.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	fmt.Println("ready")

	// Run until told to stop, or until a component dies.
	died := make(chan string, len(c.children))
	for _, ch := range c.children {
		go func(ch *child) {
			<-ch.done
			died <- ch.name
		}(ch)
	}
	select {
	case <-ctx.Done():
		return nil
	case name := <-died:
		return c.failed(fmt.Errorf("%s exited", name))
	}
}

// failed adds the tail of every component's log to err.
func (c *cluster) failed(err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for _, ch := range c.children {
		data, _ := os.ReadFile(filepath.Join(c.dir, ch.name+".log"))
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s.log (tail) ---\n%s", ch.name, data)
	}
	return errors.New(b.String())
}

func (c *cluster) start(ctx context.Context, name string, args ...string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	logFile, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	var out io.Writer = logFile
	if c.verbose {
		out = io.MultiWriter(logFile, os.Stderr)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Children die with the launcher even when it is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	ch := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(ch.done)
	}()
	c.mu.Lock()
	c.children = append(c.children, ch)
	c.mu.Unlock()
	return nil
}

// stop ends the children in reverse order of start: SIGTERM, then SIGKILL after 5 s.
func (c *cluster) stop() {
	c.mu.Lock()
	children := append([]*child(nil), c.children...)
	c.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		ch := children[i]
		_ = ch.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.done:
		case <-time.After(5 * time.Second):
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
	}
}

func until(ctx context.Context, limit time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v", what, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probeRollout rolls a one-replica Deployment out and deletes it: "ready" then means what
// `kubectl rollout status` needs (the deployment and replicaset controllers, the fake kubelet,
// the default ServiceAccount and admission) all work.
func probeRollout(ctx context.Context, client kubernetes.Interface) error {
	one := int32(1)
	labels := map[string]string{"app": "launcher-ready-probe"}
	deployments := client.AppsV1().Deployments(metav1.NamespaceSystem)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "launcher-ready-probe"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	if err := until(ctx, 60*time.Second, "probe Deployment created", func() error {
		_, err := deployments.Create(ctx, d, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if err := until(ctx, 120*time.Second, "probe Deployment rolled out", func() error {
		got, err := deployments.Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ObservedGeneration < got.Generation || got.Status.UpdatedReplicas != 1 || got.Status.AvailableReplicas != 1 {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	}); err != nil {
		return err
	}
	background := metav1.DeletePropagationBackground
	return deployments.Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: &background})
}

func adminClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeKubeconfig(path, server, ca, cert, key, user string) error {
	caData, err := os.ReadFile(ca)
	if err != nil {
		return err
	}
	certData, err := os.ReadFile(cert)
	if err != nil {
		return err
	}
	keyData, err := os.ReadFile(key)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certData, ClientKeyData: keyData}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "test"
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// writePKI makes a cluster CA, the apiserver's serving certificate, client certificates for
// the admin (group system:masters) and kube-controller-manager, and the service-account
// signing key pair.
func writePKI(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gdo-test-ca"},
		NotBefore: now, NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePair(dir, "ca", caDER, caKey); err != nil {
		return err
	}
	leaf := func(name string, serial int64, subject pkix.Name, server bool) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: subject,
			NotBefore: now, NotAfter: now.Add(365 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		return writePair(dir, name, der, key)
	}
	if err := leaf("apiserver", 2, pkix.Name{CommonName: "kube-apiserver"}, true); err != nil {
		return err
	}
	if err := leaf("admin", 3, pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}}, false); err != nil {
		return err
	}
	if err := leaf("kcm", 4, pkix.Name{CommonName: "system:kube-controller-manager"}, false); err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600)
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// stopWhenUnused cancels once no process has held a shared lock on lease for idle. It then
// keeps both locks until it exits, so a process that joins meanwhile waits on startLock and
// finds the cluster gone rather than a dying one.
func stopWhenUnused(cancel context.CancelFunc, lease, startLock string, idle time.Duration) {
	var since time.Time
	for range time.Tick(500 * time.Millisecond) {
		if unused(lease, startLock) {
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) >= idle {
				// Hold both locks for the rest of this process's life.
				if holdBoth(lease, startLock) {
					log.Printf("launcher: unused for %s, stopping", idle)
					cancel()
					return
				}
			}
		} else {
			since = time.Time{}
		}
	}
}

// unused reports whether nobody is joining (startLock free) and nobody uses the cluster
// (no shared lock on lease), releasing what it took to find out.
func unused(lease, startLock string) bool {
	s, ok := tryLock(startLock)
	if !ok {
		return false
	}
	defer s.Close()
	l, ok := tryLock(lease)
	if !ok {
		return false
	}
	l.Close()
	return true
}

var held []*os.File

func holdBoth(lease, startLock string) bool {
	s, ok := tryLock(startLock)
	if !ok {
		return false
	}
	l, ok := tryLock(lease)
	if !ok {
		s.Close()
		return false
	}
	held = append(held, s, l)
	return true
}

// tryLock takes an exclusive flock without waiting; closing the file releases it.
func tryLock(path string) (*os.File, bool) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
