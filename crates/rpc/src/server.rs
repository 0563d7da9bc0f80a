//! Serving a daemon's gRPC service on its UNIX socket.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::FILE_DESCRIPTOR_SET;

/// How long open calls may run on after a stop was requested.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a daemon could not serve its socket.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Creating the socket's directory, removing a stale socket or binding failed.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `runtime.socket_group` names no group, or the socket could not be
    /// given to it.
    #[error("runtime.socket_group: {0}")]
    Group(String),
    /// The reflection service could not load the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn socket_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Socket {
        path: path.to_path_buf(),
        source,
    }
}

/// The group (gid) named `name`, from the system's group database.
fn group_id(name: &str) -> Result<libc::gid_t, ServeError> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| ServeError::Group(format!("{name:?} is not a group name")))?;
    // SAFETY: group is plain data; all-zero is a valid value.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the lengths given; getgrnam_r
    // writes only into `group`, `buf` and `found`.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(ServeError::Group(format!("no group named {name:?}")));
    }
    Ok(group.gr_gid)
}

/// Binds the UNIX socket `path` as every daemon's sockets are: its
/// directory created, a stale socket file left by a crashed run removed,
/// mode 0660 and, with `group` (`runtime.socket_group`), that group, so
/// that a group of operators may use it. Also for sockets that are not
/// gRPC (core's C control socket).
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, ServeError> {
    let gid = group.map(group_id).transpose()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(socket_error(path))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_error(path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(socket_error(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(socket_error(path))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| ServeError::Group(format!("{}: {e}", path.display())))?;
    }
    Ok(listener)
}

/// Serves `service_name` (added to the router by `add`) on the UNIX socket
/// `path` until `shutdown` resolves, then removes the socket.
///
/// The socket is bound by [`bind`]. Reflection (v1 and
/// v1alpha) and `grpc.health.v1` are served beside the service; the health
/// status of `service_name` and of the server as a whole is SERVING.
pub async fn serve(
    path: &Path,
    group: Option<&str>,
    service_name: &str,
    add: impl FnOnce(Router) -> Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = bind(path, group)?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(service_name, ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    // Reflection lists this daemon's own service (and health, reflection),
    // not the other four daemons' services that share the descriptor set.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service_name)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let router = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let router = add(router);
    tracing::info!(socket = %path.display(), service = service_name, "serving");
    // On shutdown the server stops accepting and lets running calls finish;
    // watch streams (core's health watch, for one) never finish by
    // themselves, so after a short grace the server is dropped.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
        let _ = stop_rx.await;
    });
    let deadline = async {
        shutdown.await;
        let _ = stop_tx.send(());
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let result = tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::debug!("open streams cut at shutdown");
            Ok(())
        }
    };
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(socket = %path.display(), error = %e, "cannot remove socket");
    }
    result.map_err(ServeError::from)
}
