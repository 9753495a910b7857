package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/insuranceflow/insuranceflow/store"
)

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

// get walks maps by key and lists by int index; nil when absent.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, isObj := v.(object); isObj {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// render runs `helm template` on the chart with the values files and --set
// pairs, and decodes every object.
func render(t *testing.T, args ...string) ([]object, error) {
	t.Helper()
	helm := os.Getenv("HELM_BIN")
	if helm == "" {
		t.Fatal("HELM_BIN is unset: run `make chart-check` (or `make test`), which builds the pinned Helm (tools/helm/go.mod) and sets it")
	}
	cmd := exec.Command(helm, append([]string{"template", "insuranceflow", "insuranceflow", "--namespace", "insuranceflow"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template %v: %w: %s", args, err, stderr.String())
	}
	var objs []object
	dec := yaml.NewDecoder(&stdout)
	for {
		// Into a plain map: decoding into object would make every nested
		// mapping an object too.
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode the rendered chart: %v", err)
		}
		if o != nil {
			objs = append(objs, object(o))
		}
	}
	return objs, nil
}

func mustRender(t *testing.T, args ...string) []object {
	t.Helper()
	objs, err := render(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

// secretEnv are the variables that hold a secret: they may only come from
// a Secret (secretKeyRef), never as a plain value.
var secretEnv = []string{
	"DATABASE_URL", "TOP_APP_SECRET", "TOP_SESSION", "TEMPORAL_API_KEY",
	"INGRESS_TOKENS", "CODEC_AUTH_TOKENS", "INGRESS_TOP_APP_SECRET", "NOTIFY_SECRET",
}

// envOf returns a container's env as name -> entry.
func envOf(c any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, e := range list(c, "env") {
		m := e.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

// checkWorkloads checks every container of every Deployment: probes,
// limits, the security context, and secrets only from Secrets.
func checkWorkloads(t *testing.T, objs []object) {
	t.Helper()
	n := 0
	for _, o := range objs {
		if o.kind() != "Deployment" {
			continue
		}
		n++
		pod := get(o, "spec", "template", "spec")
		if get(pod, "securityContext", "runAsNonRoot") != true || get(pod, "securityContext", "runAsUser") != 10001 {
			t.Errorf("%s: pod securityContext %v, want runAsNonRoot and uid 10001", o.name(), get(pod, "securityContext"))
		}
		if get(pod, "automountServiceAccountToken") != false {
			t.Errorf("%s: the service account token is mounted", o.name())
		}
		containers := append(list(pod, "containers"), list(pod, "initContainers")...)
		if len(containers) == 0 {
			t.Errorf("%s: no containers", o.name())
		}
		for _, c := range containers {
			where := o.name() + "/" + str(c, "name")
			if str(c, "livenessProbe", "httpGet", "path") != "/healthz" {
				t.Errorf("%s: livenessProbe %v, want GET /healthz", where, get(c, "livenessProbe"))
			}
			if str(c, "readinessProbe", "httpGet", "path") != "/readyz" {
				t.Errorf("%s: readinessProbe %v, want GET /readyz", where, get(c, "readinessProbe"))
			}
			for _, r := range []string{"cpu", "memory"} {
				if get(c, "resources", "limits", r) == nil || get(c, "resources", "requests", r) == nil {
					t.Errorf("%s: resources %v, want %s requests and limits", where, get(c, "resources"), r)
				}
			}
			sc := get(c, "securityContext")
			if get(sc, "runAsNonRoot") != true || get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false ||
				!slices.Contains(list(sc, "capabilities", "drop"), any("ALL")) {
				t.Errorf("%s: securityContext %v, want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, all capabilities dropped", where, sc)
			}
			for name, e := range envOf(c) {
				value, plain := e["value"].(string)
				if plain && slices.Contains(secretEnv, name) {
					t.Errorf("%s: secret %s is a plain env value", where, name)
				}
				if plain && strings.Contains(value, "://") && store.URLHasPassword(value) {
					t.Errorf("%s: %s is a URL with a password in plain env", where, name)
				}
				if !plain && get(e, "valueFrom", "secretKeyRef", "name") == nil {
					t.Errorf("%s: %s is neither a value nor from a Secret: %v", where, name, e)
				}
			}
			if env := envOf(c); str(env["PAYLOAD_REQUIRE_ENCRYPTION"], "value") != "true" {
				t.Errorf("%s: PAYLOAD_REQUIRE_ENCRYPTION=%v, want true by default", where, env["PAYLOAD_REQUIRE_ENCRYPTION"])
			}
		}
	}
	if n != 2 {
		t.Errorf("rendered %d Deployments, want 2 (worker and ingress)", n)
	}
}

// checkShape checks the objects every install has: the two Deployments in
// their modes, the ingress's Service selecting the ingress pods, and a
// PodDisruptionBudget for each.
func checkShape(t *testing.T, objs []object) {
	t.Helper()
	worker, ingress := find(objs, "Deployment", "insuranceflow-worker"), find(objs, "Deployment", "insuranceflow-ingress")
	if worker == nil || ingress == nil {
		t.Fatalf("want the insuranceflow-worker and insuranceflow-ingress Deployments")
	}
	for _, d := range []struct {
		o    object
		mode string
	}{{worker, "--no-ingress"}, {ingress, "--no-worker"}} {
		args := list(d.o, "spec", "template", "spec", "containers", 0, "args")
		if !slices.Contains(args, any(d.mode)) {
			t.Errorf("%s: args %v, want %s", d.o.name(), args, d.mode)
		}
	}
	svc := find(objs, "Service", "insuranceflow-ingress")
	if svc == nil {
		t.Fatal("no insuranceflow-ingress Service")
	}
	selector := get(svc, "spec", "selector").(map[string]any)
	podLabels := get(ingress, "spec", "template", "metadata", "labels").(map[string]any)
	workerLabels := get(worker, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(labels map[string]any) bool {
		for k, v := range selector {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(podLabels) || matches(workerLabels) {
		t.Errorf("the ingress Service selects %v: want the ingress pods %v only, not the workers %v", selector, podLabels, workerLabels)
	}
	for _, name := range []string{"insuranceflow-worker", "insuranceflow-ingress"} {
		if find(objs, "PodDisruptionBudget", name) == nil {
			t.Errorf("no PodDisruptionBudget %s", name)
		}
	}
}

func TestCloudValues(t *testing.T) {
	objs := mustRender(t, "-f", "values-cloud.yaml")
	checkWorkloads(t, objs)
	checkShape(t, objs)
	for _, name := range []string{"insuranceflow-worker", "insuranceflow-ingress"} {
		c := get(find(objs, "Deployment", name), "spec", "template", "spec", "containers", 0)
		env := envOf(c)
		if ref := get(env["TEMPORAL_API_KEY"], "valueFrom", "secretKeyRef"); str(ref, "name") != "temporal-cloud-api-key" || str(ref, "key") != "api-key" {
			t.Errorf("%s: TEMPORAL_API_KEY %v, want the temporal-cloud-api-key Secret's api-key", name, env["TEMPORAL_API_KEY"])
		}
		if str(env["TEMPORAL_ADDRESS"], "value") != "my-namespace.my-account.tmprl.cloud:7233" {
			t.Errorf("%s: TEMPORAL_ADDRESS %v", name, env["TEMPORAL_ADDRESS"])
		}
		if _, ok := env["TEMPORAL_TLS_CLIENT_CERT_PATH"]; ok {
			t.Errorf("%s: a client certificate with an API key", name)
		}
		if got := str(env["TEMPORAL_GRPC_COMPRESSION"], "value"); got != "gzip" {
			t.Errorf("%s: TEMPORAL_GRPC_COMPRESSION %q, want gzip over the WAN to Temporal Cloud", name, got)
		}
	}
	if find(objs, "ServiceMonitor", "insuranceflow") == nil {
		t.Error("values-cloud.yaml enables the ServiceMonitor, none rendered")
	}
}

func TestMTLSValues(t *testing.T) {
	objs := mustRender(t, "-f", "values-mtls.yaml")
	checkWorkloads(t, objs)
	checkShape(t, objs)
	for _, name := range []string{"insuranceflow-worker", "insuranceflow-ingress"} {
		pod := get(find(objs, "Deployment", name), "spec", "template", "spec")
		c := get(pod, "containers", 0)
		env := envOf(c)
		if _, ok := env["TEMPORAL_API_KEY"]; ok {
			t.Errorf("%s: an API key with mutual TLS", name)
		}
		if got := str(env["TEMPORAL_GRPC_COMPRESSION"], "value"); got != "none" {
			t.Errorf("%s: TEMPORAL_GRPC_COMPRESSION %q, want none to an in-cluster frontend", name, got)
		}
		// The TLS files are where the TLS Secret is mounted.
		mount := ""
		for _, m := range list(c, "volumeMounts") {
			if str(m, "name") == "temporal-tls" {
				mount = str(m, "mountPath")
			}
		}
		var secretName string
		for _, v := range list(pod, "volumes") {
			if str(v, "name") == "temporal-tls" {
				secretName = str(v, "secret", "secretName")
			}
		}
		if mount == "" || secretName != "insuranceflow-temporal-tls" {
			t.Fatalf("%s: temporal-tls mounted at %q from Secret %q, want the insuranceflow-temporal-tls Secret", name, mount, secretName)
		}
		for variable, file := range map[string]string{
			"TEMPORAL_TLS_CLIENT_CERT_PATH":    "tls.crt",
			"TEMPORAL_TLS_CLIENT_KEY_PATH":     "tls.key",
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "ca.crt",
		} {
			if got := str(env[variable], "value"); got != mount+"/"+file {
				t.Errorf("%s: %s=%q, want %s/%s", name, variable, got, mount, file)
			}
		}
		if str(env["TEMPORAL_TLS"], "value") != "true" || str(env["TEMPORAL_TLS_SERVER_NAME"], "value") != "temporal-frontend" {
			t.Errorf("%s: TEMPORAL_TLS %v, server name %v", name, env["TEMPORAL_TLS"], env["TEMPORAL_TLS_SERVER_NAME"])
		}
	}
	if find(objs, "ServiceMonitor", "insuranceflow") != nil {
		t.Error("values-mtls.yaml leaves the ServiceMonitor off, one rendered")
	}
}

// TestSecretsStayInTheSecret renders the chart with a Secret made from
// values and checks that each secret value appears in that Secret and in no
// other object (no env value, no annotation, no ConfigMap).
func TestSecretsStayInTheSecret(t *testing.T) {
	sentinels := map[string]string{
		"databaseURL":         "postgres://flow:sentinel-db-password@db:5432/flow",
		"topAppSecret":        "sentinel-top-app-secret",
		"payloadKeys":         "k1:c2VudGluZWwtcGF5bG9hZC1rZXktMzItYnl0ZXMhIQ==",
		"ingressClients":      "claims:report:sentinel-ingress-token",
		"codecAuthTokens":     "sentinel-codec-token",
		"ingressTOPAppSecret": "sentinel-router-secret",
		"notifySecret":        "whsec_c2VudGluZWwtbm90aWZ5LXNlY3JldC0zMmJ5dGVzISE=",
	}
	args := []string{"-f", "values-mtls.yaml", "--set", "secrets.existingSecret=", "--set", "secrets.create=true",
		"--set", "codec.onIngress=true", "--set", "ingress.topAppKey=router-key", "--set", "notify.url=https://claims.example/hooks"}
	for k, v := range sentinels {
		args = append(args, "--set-string", "secrets.values."+k+"="+v)
	}
	objs := mustRender(t, args...)
	checkWorkloads(t, objs)
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range sentinels {
			if o.kind() == "Secret" {
				if !strings.Contains(string(b), v) {
					t.Errorf("the Secret lacks %s", k)
				}
				continue
			}
			if strings.Contains(string(b), v) || strings.Contains(string(b), "sentinel") {
				t.Errorf("%s %s holds a secret (%s)", o.kind(), o.name(), k)
			}
		}
	}
	ingress := get(find(objs, "Deployment", "insuranceflow-ingress"), "spec", "template", "spec", "containers", 0)
	env := envOf(ingress)
	if str(env["CODEC_ADDR"], "value") != "ingress" || !strings.HasSuffix(str(env["CODEC_AUTH_TOKENS_FILE"], "value"), "/codec-auth-tokens") {
		t.Errorf("codec.onIngress: CODEC_ADDR %v, CODEC_AUTH_TOKENS_FILE %v", env["CODEC_ADDR"], env["CODEC_AUTH_TOKENS_FILE"])
	}
	if str(get(env["INGRESS_TOP_APP_SECRET"], "valueFrom", "secretKeyRef"), "key") != "ingress-top-app-secret" {
		t.Errorf("INGRESS_TOP_APP_SECRET %v, want the Secret's ingress-top-app-secret", env["INGRESS_TOP_APP_SECRET"])
	}
	// Notifications: both processes know the URL (runs the ingress starts
	// notify); only the worker, which signs, gets the secret.
	if str(env["NOTIFY_URL"], "value") != "https://claims.example/hooks" || env["NOTIFY_SECRET"] != nil {
		t.Errorf("ingress: NOTIFY_URL %v, NOTIFY_SECRET %v; want the URL and no secret", env["NOTIFY_URL"], env["NOTIFY_SECRET"])
	}
	wenv := envOf(get(find(objs, "Deployment", "insuranceflow-worker"), "spec", "template", "spec", "containers", 0))
	if str(wenv["NOTIFY_URL"], "value") != "https://claims.example/hooks" ||
		str(get(wenv["NOTIFY_SECRET"], "valueFrom", "secretKeyRef"), "key") != "notify-secret" {
		t.Errorf("worker: NOTIFY_URL %v, NOTIFY_SECRET %v; want the URL and the Secret's notify-secret", wenv["NOTIFY_URL"], wenv["NOTIFY_SECRET"])
	}
}

// TestRefusesAnInstallWithoutItsSettings checks that a missing Temporal
// address, app key or Secret fails the render with a message naming it,
// instead of rendering pods that crash.
func TestRefusesAnInstallWithoutItsSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{"--set", "temporal.address=t:7233", "--set", "top.appKey=k"}, "secrets.existingSecret"},
		{"no address", []string{"--set", "secrets.existingSecret=s", "--set", "top.appKey=k"}, "temporal.address is required"},
		{"no app key", []string{"--set", "secrets.existingSecret=s", "--set", "temporal.address=t:7233"}, "top.appKey is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err=%v, want it to name %q", err, tt.want)
			}
		})
	}
}
