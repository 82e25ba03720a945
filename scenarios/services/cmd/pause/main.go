// Command pause holds a container pod's network namespace for the life of a lab: the Docker
// backend starts one per instance, and the service's container joins its namespace, so the
// instance keeps its address and its faults when the service restarts. It waits for SIGTERM
// or SIGINT and exits.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
