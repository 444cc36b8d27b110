//! Compiles etcd's wire schemas (our own .proto files under proto/) with tonic-prost-build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A protoc from a crate, so building needs nothing from the system (PROTOC still wins when set).
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "mvccpb/kv.proto",
        "authpb/auth.proto",
        "etcdserverpb/rpc.proto",
        "etcdserverpb/raft_internal.proto",
        "v3lockpb/v3lock.proto",
        "v3electionpb/v3election.proto",
    ];
    let paths: Vec<_> = files.iter().map(|f| root.join(f)).collect();
    for p in &paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    tonic_prost_build::configure().build_client(true).build_server(true).compile_protos(&paths, &[root])?;
    Ok(())
}
