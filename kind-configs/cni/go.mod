module sandbox.local/cni

go 1.19
