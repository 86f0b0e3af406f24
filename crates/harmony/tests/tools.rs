//! Pinned tool downloads against a local HTTP server (wiremock) standing in for the release
//! site: the sha256 check, what is left on disk after each failure, and `PATH` reuse.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use harmony::tools::{
    Arch, HELM_VERSION, K3D_VERSION, Os, Platform, SearchPath, ToolError, ToolSpec, Tools,
};
use sha2::Digest as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LINUX_AMD64: Platform = Platform {
    os: Os::Linux,
    arch: Arch::Amd64,
};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Tools in a fresh data dir that never looks at the real `PATH`.
fn tools(data_dir: &Path) -> Tools {
    Tools::new(data_dir)
        .expect("tools")
        .platform(LINUX_AMD64)
        .search_path(SearchPath::Disabled)
}

/// Every entry of the bin dir (temporary files start with '.', so they show up here too).
fn bin_entries(data_dir: &Path) -> Vec<String> {
    match std::fs::read_dir(data_dir.join("bin")) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

const FAKE_K3D: &[u8] = b"#!/bin/sh\necho 'k3d version v5.8.3'\n";

async fn serve_k3d(server: &MockServer, checksums: String, asset_hits: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/{K3D_VERSION}/checksums.txt")))
        .respond_with(ResponseTemplate::new(200).set_body_string(checksums))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{K3D_VERSION}/k3d-linux-amd64")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(FAKE_K3D))
        .expect(asset_hits)
        .mount(server)
        .await;
}

#[tokio::test]
#[tracing_test::traced_test]
async fn good_checksum_installs_an_executable_0755_once() {
    let server = MockServer::start().await;
    // k3d lists its build directory in checksums.txt; the entry is matched by base name.
    let checksums = format!(
        "{}  _dist/k3d-linux-arm64\n{}  _dist/k3d-linux-amd64\n",
        "0".repeat(64),
        sha256_hex(FAKE_K3D)
    );
    serve_k3d(&server, checksums, 1).await;
    let data = tempfile::tempdir().expect("tempdir");
    let tools = tools(data.path());
    let spec = ToolSpec::k3d().with_base_url(server.uri());

    let installed = tools.ensure(&spec).await.expect("installs");
    assert_eq!(
        installed,
        data.path().join(format!("bin/k3d-{K3D_VERSION}"))
    );
    assert_eq!(std::fs::read(&installed).expect("read"), FAKE_K3D);
    let mode = std::fs::metadata(&installed)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(bin_entries(data.path()), vec![format!("k3d-{K3D_VERSION}")]);
    let out = std::process::Command::new(&installed)
        .output()
        .expect("runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "k3d version v5.8.3\n");
    assert!(logs_contain("Downloading k3d"));

    // A second call reuses the verified copy: the asset mock expects exactly one hit.
    let again = tools.ensure(&spec).await.expect("reuses");
    assert_eq!(again, installed);
    server.verify().await;
}

#[tokio::test]
async fn bad_checksum_names_file_and_both_hashes_and_leaves_nothing() {
    let server = MockServer::start().await;
    let published = "ab".repeat(32);
    serve_k3d(&server, format!("{published}  k3d-linux-amd64\n"), 1).await;
    let data = tempfile::tempdir().expect("tempdir");

    let err = tools(data.path())
        .ensure(&ToolSpec::k3d().with_base_url(server.uri()))
        .await
        .expect_err("checksum mismatch");
    match &err {
        ToolError::ChecksumMismatch {
            file,
            expected,
            actual,
            ..
        } => {
            assert_eq!(file, "k3d-linux-amd64");
            assert_eq!(expected, &published);
            assert_eq!(actual, &sha256_hex(FAKE_K3D));
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("k3d-linux-amd64"), "{text}");
    assert!(
        text.contains(&published) && text.contains(&sha256_hex(FAKE_K3D)),
        "{text}"
    );
    assert!(text.contains("nothing was installed"), "{text}");
    // No installed copy and no temporary leftovers.
    assert_eq!(bin_entries(data.path()), Vec::<String>::new());
}

#[tokio::test]
async fn missing_checksum_entry_is_an_error_before_any_download() {
    let server = MockServer::start().await;
    let checksums = format!("{}  _dist/k3d-darwin-arm64\n", sha256_hex(FAKE_K3D));
    serve_k3d(&server, checksums, 0).await;
    let data = tempfile::tempdir().expect("tempdir");

    let err = tools(data.path())
        .ensure(&ToolSpec::k3d().with_base_url(server.uri()))
        .await
        .expect_err("no entry");
    assert!(
        matches!(&err, ToolError::ChecksumMissing { file, .. } if file == "k3d-linux-amd64"),
        "{err:?}"
    );
    assert!(err.to_string().contains("checksums.txt"), "{err}");
    assert_eq!(bin_entries(data.path()), Vec::<String>::new());
    server.verify().await;
}

#[tokio::test]
async fn http_error_status_names_the_url() {
    let server = MockServer::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = tools(data.path())
        .ensure(&ToolSpec::k3d().with_base_url(server.uri()))
        .await
        .expect_err("404");
    assert!(
        matches!(&err, ToolError::Status { status: 404, url } if url.ends_with("/checksums.txt")),
        "{err:?}"
    );
    assert_eq!(bin_entries(data.path()), Vec::<String>::new());
}

fn helm_tarball(member: &str, content: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in [("linux-amd64/LICENSE", &b"license"[..]), (member, content)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, name, body).expect("append");
    }
    let mut gz = tar.into_inner().expect("tar");
    gz.flush().expect("flush");
    gz.finish().expect("gzip")
}

/// Serves the linux-amd64 helm `tarball` and its `.sha256sum` (helm's release layout); the
/// tarball is expected to be fetched `tarball_hits` times when given.
async fn serve_helm(server: &MockServer, tarball: Vec<u8>, tarball_hits: Option<u64>) {
    let asset = format!("helm-{HELM_VERSION}-linux-amd64.tar.gz");
    Mock::given(method("GET"))
        .and(path(format!("/{asset}.sha256sum")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(format!("{}  {asset}\n", sha256_hex(&tarball))),
        )
        .mount(server)
        .await;
    let mut tarball_mock = Mock::given(method("GET"))
        .and(path(format!("/{asset}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tarball));
    if let Some(hits) = tarball_hits {
        tarball_mock = tarball_mock.expect(hits);
    }
    tarball_mock.mount(server).await;
}

#[tokio::test]
async fn helm_tarball_is_verified_then_its_binary_extracted() {
    let server = MockServer::start().await;
    let fake_helm = b"#!/bin/sh\necho v3\n";
    let tarball = helm_tarball("linux-amd64/helm", fake_helm);
    serve_helm(&server, tarball, Some(1)).await;
    let data = tempfile::tempdir().expect("tempdir");

    let installed = tools(data.path())
        .ensure(&ToolSpec::helm().with_base_url(server.uri()))
        .await
        .expect("installs");
    assert_eq!(
        installed,
        data.path().join(format!("bin/helm-{HELM_VERSION}"))
    );
    assert_eq!(std::fs::read(&installed).expect("read"), fake_helm);
    let mode = std::fs::metadata(&installed)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // The tarball itself is not kept.
    assert_eq!(
        bin_entries(data.path()),
        vec![format!("helm-{HELM_VERSION}")]
    );
}

#[tokio::test]
async fn tarball_without_the_binary_is_an_error_and_leaves_nothing() {
    let server = MockServer::start().await;
    let tarball = helm_tarball("linux-amd64/not-helm", b"x");
    serve_helm(&server, tarball, None).await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = tools(data.path())
        .ensure(&ToolSpec::helm().with_base_url(server.uri()))
        .await
        .expect_err("member missing");
    assert!(
        matches!(&err, ToolError::MemberMissing { member, .. } if member == "linux-amd64/helm"),
        "{err:?}"
    );
    assert_eq!(bin_entries(data.path()), Vec::<String>::new());
}

fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test]
async fn tool_on_path_at_the_pinned_version_is_used_without_downloading() {
    let server = MockServer::start().await; // nothing mounted: any request would 404
    let path_dir = tempfile::tempdir().expect("tempdir");
    write_script(
        path_dir.path(),
        "k3d",
        &format!(
            "#!/bin/sh\necho 'k3d version {K3D_VERSION}'\necho 'k3s version v1.31.5-k3s1 (default)'\n"
        ),
    );
    let data = tempfile::tempdir().expect("tempdir");
    let found = tools(data.path())
        .search_path(SearchPath::Dirs(vec![path_dir.path().to_owned()]))
        .ensure(&ToolSpec::k3d().with_base_url(server.uri()))
        .await
        .expect("uses PATH");
    assert_eq!(found, path_dir.path().join("k3d"));
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(!data.path().join("bin").exists());
}

#[tokio::test]
async fn tool_on_path_at_another_version_is_replaced_by_the_pinned_download() {
    let server = MockServer::start().await;
    serve_k3d(
        &server,
        format!("{}  k3d-linux-amd64\n", sha256_hex(FAKE_K3D)),
        1,
    )
    .await;
    let path_dir = tempfile::tempdir().expect("tempdir");
    write_script(
        path_dir.path(),
        "k3d",
        "#!/bin/sh\necho 'k3d version v5.0.0'\n",
    );
    let data = tempfile::tempdir().expect("tempdir");
    let found = tools(data.path())
        .search_path(SearchPath::Dirs(vec![path_dir.path().to_owned()]))
        .ensure(&ToolSpec::k3d().with_base_url(server.uri()))
        .await
        .expect("downloads");
    assert_eq!(found, data.path().join(format!("bin/k3d-{K3D_VERSION}")));
    server.verify().await;
}
