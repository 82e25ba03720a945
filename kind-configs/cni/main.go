// Command sandbox-cni is the pod network of sandbox's kind clusters. kind's own kindnetd is not
// published as a Go module, so a node image built offline carries this instead: on every node it
// writes a ptp + host-local CNI configuration for the node's pod CIDR and routes every other
// node's pod CIDR via that node's address. Pods reach pods on other nodes by plain routing over
// the nodes' Docker network; nothing is masqueraded, because nothing may leave the machine.
//
// `sandbox-cni lookup NAME` resolves NAME through the pod's resolver and prints its addresses:
// sandbox runs it in a pod to check that CoreDNS answers.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const (
	saDir    = "/var/run/secrets/kubernetes.io/serviceaccount"
	confFile = "/etc/cni/net.d/10-sandbox.conflist"
)

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodCIDR string `json:"podCIDR"`
		} `json:"spec"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

type api struct {
	url    string
	token  string
	client *http.Client
}

func newAPI() (*api, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("KUBERNETES_SERVICE_HOST/PORT not set: not running in a pod")
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		return nil, err
	}
	return &api{
		url:   "https://" + net.JoinHostPort(host, port),
		token: string(bytes.TrimSpace(token)),
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		},
	}, nil
}

func (a *api) nodes() (*nodeList, error) {
	req, err := http.NewRequest("GET", a.url+"/api/v1/nodes", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/nodes: %s", resp.Status)
	}
	var l nodeList
	return &l, json.NewDecoder(resp.Body).Decode(&l)
}

func conflist(podCIDR string) []byte {
	return []byte(fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "sandbox",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": %q }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
`, podCIDR))
}

// writeIfChanged replaces path atomically, so the kubelet never reads half a file.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

func sync(a *api, self string) error {
	l, err := a.nodes()
	if err != nil {
		return err
	}
	// Pods on this node send to other nodes' pods through this node's network namespace.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return err
	}
	for _, n := range l.Items {
		if n.Spec.PodCIDR == "" {
			continue
		}
		if n.Metadata.Name == self {
			changed, err := writeIfChanged(confFile, conflist(n.Spec.PodCIDR))
			if err != nil {
				return err
			}
			if changed {
				log.Printf("wrote %s for %s", confFile, n.Spec.PodCIDR)
			}
			continue
		}
		for _, ad := range n.Status.Addresses {
			if ad.Type != "InternalIP" || net.ParseIP(ad.Address).To4() == nil {
				continue
			}
			out, err := exec.Command("ip", "route", "replace", n.Spec.PodCIDR, "via", ad.Address).CombinedOutput()
			if err != nil {
				return fmt.Errorf("route %s via %s: %v: %s", n.Spec.PodCIDR, ad.Address, err, out)
			}
		}
	}
	return nil
}

func lookup(name string) {
	addrs, err := net.LookupHost(name)
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "lookup" {
		lookup(os.Args[2])
		return
	}
	self := os.Getenv("NODE_NAME")
	if self == "" {
		log.Fatal("NODE_NAME not set (the DaemonSet passes spec.nodeName)")
	}
	a, err := newAPI()
	if err != nil {
		log.Fatal(err)
	}
	for {
		if err := sync(a, self); err != nil {
			log.Print(err)
		}
		time.Sleep(5 * time.Second)
	}
}
