package kubernetes

import (
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigOf is the kubeconfig of a session's account: the API server,
// its CA and the account's token, with the session namespace as default,
// as /config/kubeconfig of the session serves it.
func kubeconfigOf(server string, ca, token []byte, namespace string) ([]byte, error) {
	const name = "session"
	return clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{name: {Server: server, CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{name: {Token: string(token)}},
		Contexts:       map[string]*clientcmdapi.Context{name: {Cluster: name, AuthInfo: name, Namespace: namespace}},
		CurrentContext: name,
	})
}
