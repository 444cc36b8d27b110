//! Compiles etcd's wire schemas (our own .proto files under proto/) with tonic-prost-build, and their JSON
//! mapping (for the gateway) with pbjson-build.
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
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("descriptors.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&paths, &[root])?;
    // serde for every message, in the protobuf JSON mapping etcd's gateway uses (grpc-gateway's JSONPb with
    // OrigName: proto field names, int64 as strings, bytes as base64, enums by name, defaults omitted).
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .preserve_proto_field_names()
        .build(&[".mvccpb", ".authpb", ".etcdserverpb", ".v3lockpb", ".v3electionpb"])?;
    Ok(())
}
