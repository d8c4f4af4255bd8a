package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

// Labels and annotations of what the runtime creates. The portal label
// lets several portals share a cluster; List and the environment sync
// select by it.
const (
	labelManagedBy   = "app.kubernetes.io/managed-by"
	managedBy        = "portico"
	labelPortal      = "portico.dev/portal"
	labelEnvironment = "portico.dev/environment"
	labelSession     = "portico.dev/session"
	// labelRole tells session namespaces, and the objects of their hosts,
	// from environment namespaces.
	labelRole       = "portico.dev/role"
	roleSession     = "session"
	roleEnvironment = "environment"
	// annotationStarted marks a session namespace whose host was ready
	// once: its host's pod missing then means the host is gone, not that
	// it is still being made. On the namespace, which the session can
	// read but not change.
	annotationStarted = "portico.dev/started"
	fieldManager      = "portico"
)

// Names of what the runtime makes. The session namespace, which the
// session administers, holds the Role of its account and the RoleBinding
// to it. The session host's pod, service, account and secrets are in the
// environment namespace, where the session has no rights at all, named
// after the session.
const (
	hostContainer = "session"
	hostPort      = 10080
	// sessionRoleName names the Role of the session's account and its
	// RoleBinding.
	sessionRoleName = "portico-session"
	homeDir         = "/home/session"
	seedDir         = "/var/run/portico/session"
	requestDir      = "/var/run/portico/request"
	// allocationKey is the key of the request Secret holding the
	// allocation as the session host reads it; the parameters are keys
	// of their own beside it, as in Educates.
	allocationKey = "allocation.json"
	// Keys of the config Secret beside the seed files: what Allocate
	// needs to apply the request objects, possibly after a portal
	// restart.
	requestObjectsKey = "request-objects.json"
	variablesKey      = "variables.json"
	// hostUID runs the session host and its shells unprivileged.
	hostUID = 1001
)

// hostName names the session host's pod and service: the session's name,
// as Educates names them, when it can name a service (a DNS-1035 label,
// which starts with a letter); else, as a portal's name may start with a
// digit, a name made from it.
func hostName(session string) string {
	if len(validation.IsDNS1035Label(session)) == 0 {
		return session
	}
	sum := sha256.Sum256([]byte(session))
	return "session-" + hex.EncodeToString(sum[:8])
}

func configSecretName(session string) string  { return session + "-config" }
func tokenSecretName(session string) string   { return session + "-token" }
func requestSecretName(session string) string { return session + "-request" }

// serviceAccountName is the account of the session, named after it as the
// $(service_account) variable says.
func serviceAccountName(session string) string { return session }

func (r *Runtime) sessionLabels(spec runtime.Spec) map[string]string {
	return map[string]string{
		labelManagedBy:   managedBy,
		labelPortal:      r.portal,
		labelEnvironment: spec.Environment,
		labelSession:     spec.Session,
		labelRole:        roleSession,
	}
}

// withPodSecurity adds to the labels of a session namespace the pod
// security it enforces: baseline, which keeps the session's pods off the
// node under them (no privileged containers, host namespaces, host paths
// or added capabilities) while images that run as root still work. Admin
// of its namespace, a session cannot change these labels: its Role has no
// write on namespaces.
func withPodSecurity(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	out["pod-security.kubernetes.io/enforce"] = "baseline"
	out["pod-security.kubernetes.io/enforce-version"] = "latest"
	return out
}

func (r *Runtime) environmentLabels(env string) map[string]string {
	return map[string]string{
		labelManagedBy:   managedBy,
		labelPortal:      r.portal,
		labelEnvironment: env,
		labelRole:        roleEnvironment,
	}
}

func objectMeta(name, ns string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}
}

// sessionRoleOf is the Role of the session's account in its namespace:
// the rules of the cluster role named by Options.SessionRole (the
// cluster's admin role, with whatever custom resources it aggregates), as
// sessionRules keeps them. dropped names the rules left out.
func sessionRoleOf(ns string, labels map[string]string, from *rbacv1.ClusterRole) (role *rbacv1.Role, dropped []string) {
	rules, dropped := sessionRules(from.Rules)
	return &rbacv1.Role{ObjectMeta: objectMeta(sessionRoleName, ns, labels), Rules: rules}, dropped
}

// sessionBinding binds the session's account, in the environment
// namespace, to its Role in the session namespace: its rights are there
// only.
func sessionBinding(ns, env string, labels map[string]string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(sessionRoleName, ns, labels),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sessionRoleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccountName(ns), Namespace: env}},
	}
}

// readOnly are the resources of the core group a session may read but
// never change: its budget, and its namespace itself.
var readOnly = map[string]bool{
	"resourcequotas": true, "resourcequotas/status": true, "limitranges": true,
	"namespaces": true, "namespaces/status": true, "namespaces/finalize": true,
}

var readVerbs = []string{"get", "list", "watch"}

// sessionRules are the rules of a cluster role as a session's Role may hold
// them. The built-in admin role already leaves quotas, limits and the
// namespace alone; a cluster may have extended it by aggregation, and the
// budget must hold whatever it grants. So writes of the readOnly resources
// become reads, a write of every core resource ("*") is dropped (a rule
// cannot say "all but"), and non-resource URLs, which a Role cannot hold,
// are dropped.
func sessionRules(from []rbacv1.PolicyRule) (rules []rbacv1.PolicyRule, dropped []string) {
	for _, rule := range from {
		core := slices.Contains(rule.APIGroups, "") || slices.Contains(rule.APIGroups, "*")
		writes := slices.ContainsFunc(rule.Verbs, func(v string) bool { return !slices.Contains(readVerbs, v) })
		switch {
		case len(rule.NonResourceURLs) > 0:
			dropped = append(dropped, rule.String())
			continue
		case !core || !writes:
			rules = append(rules, rule)
			continue
		case slices.Contains(rule.Resources, "*"):
			dropped = append(dropped, rule.String())
			continue
		}
		var keep, guarded []string
		for _, res := range rule.Resources {
			if readOnly[res] {
				guarded = append(guarded, res)
			} else {
				keep = append(keep, res)
			}
		}
		if len(guarded) == 0 {
			rules = append(rules, rule)
			continue
		}
		if len(keep) > 0 {
			r := *rule.DeepCopy()
			r.Resources = keep
			rules = append(rules, r)
		}
		var reads []string
		for _, v := range readVerbs {
			if slices.Contains(rule.Verbs, v) || slices.Contains(rule.Verbs, rbacv1.VerbAll) {
				reads = append(reads, v)
			}
		}
		if len(reads) > 0 {
			r := *rule.DeepCopy()
			r.Resources, r.Verbs = guarded, reads
			rules = append(rules, r)
		}
	}
	return rules, dropped
}

// hostMeta is the metadata of an object of the session host, in the
// environment namespace, owned by the session's namespace: the garbage
// collector removes it once that namespace is gone, however it went.
func hostMeta(name string, ns *corev1.Namespace, env string, labels map[string]string) metav1.ObjectMeta {
	m := objectMeta(name, env, labels)
	m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Namespace", Name: ns.Name, UID: ns.UID}}
	return m
}

// tokenSecretOf asks the token controller for a long-lived token of the
// session's account: it lives exactly as long as the account, which a
// requested (expiring) token would not, for a session of unknown length.
func tokenSecretOf(ns *corev1.Namespace, env string, labels map[string]string) *corev1.Secret {
	m := hostMeta(tokenSecretName(ns.Name), ns, env, labels)
	m.Annotations = map[string]string{corev1.ServiceAccountNameKey: serviceAccountName(ns.Name)}
	return &corev1.Secret{ObjectMeta: m, Type: corev1.SecretTypeServiceAccountToken}
}

// hostProgram is the session host in the session image
// (deploy/kubernetes/Dockerfile.session builds cmd/portico-session into its
// PATH): the small program, not the portal, so that a session pod pays for
// nothing the portal links.
const hostProgram = "portico-session"

// hostPod is the session host. It runs as the session's account, so that
// the in-cluster credentials of its shells are the session's too (its
// kubeconfig names the session namespace; the pod's own namespace is the
// environment's, where the account can do nothing).
func (r *Runtime) hostPod(spec runtime.Spec, ns *corev1.Namespace, labels map[string]string, res corev1.ResourceRequirements) *corev1.Pod {
	image := spec.Cluster.Image
	if image == "" {
		image = r.image
	}
	uid, no, yes := int64(hostUID), false, true
	return &corev1.Pod{
		ObjectMeta: hostMeta(hostName(spec.Session), ns, spec.Environment, labels),
		Spec: corev1.PodSpec{
			ServiceAccountName: serviceAccountName(spec.Session),
			EnableServiceLinks: &no,
			// Within the restricted pod security standard.
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid, RunAsNonRoot: &yes,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            hostContainer,
				Image:           image,
				ImagePullPolicy: r.pullPolicy,
				Command: []string{hostProgram,
					"--home", homeDir,
					"--listen", ":" + itoa(hostPort),
					"--seed", seedDir,
					"--allocation-file", requestDir + "/" + allocationKey},
				WorkingDir: homeDir,
				Ports:      []corev1.ContainerPort{{Name: "http", ContainerPort: hostPort}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
					PeriodSeconds: 2,
				},
				Resources: res,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "home", MountPath: homeDir},
					{Name: "seed", MountPath: seedDir, ReadOnly: true},
					{Name: "request", MountPath: requestDir, ReadOnly: true},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "seed", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: configSecretName(spec.Session),
					Items: []corev1.KeyToPath{
						{Key: sessionhost.SeedConfig, Path: sessionhost.SeedConfig},
						{Key: sessionhost.SeedKubeconfig, Path: sessionhost.SeedKubeconfig},
					},
				}}},
				// Mounted whole, not by subPath: the kubelet refreshes it, so
				// an allocation written after the start reaches the host.
				{Name: "request", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: requestSecretName(spec.Session), Optional: &yes,
				}}},
			},
		},
	}
}

// hostService selects the host's pod by the labels only the portal sets
// in the environment namespace.
func hostService(ns *corev1.Namespace, env string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: hostMeta(hostName(ns.Name), ns, env, labels),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{labelSession: ns.Name, labelRole: roleSession},
			Ports:    []corev1.ServicePort{{Name: "http", Port: hostPort, TargetPort: intstr.FromString("http")}},
		},
	}
}

// address is where the portal reaches the host of session in environment
// env: its service's cluster DNS name, the same from every replica, in a
// namespace where the session can neither make nor change a service.
func address(session, env string) string {
	return hostName(session) + "." + env + ".svc:" + itoa(hostPort)
}
