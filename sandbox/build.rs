//! The bundled scenarios and courses, the Go services' source and the eBPF objects are
//! embedded in the binary; rebuild when any of them changes.

fn main() {
    println!("cargo:rerun-if-changed=../scenarios");
    println!("cargo:rerun-if-changed=../courses");
    println!("cargo:rerun-if-changed=../ebpf");
}
