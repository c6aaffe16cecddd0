//! The Docker containerizer against the real Engine: connection, spec mapping, networks, ports,
//! pull policies, exec and logs.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use hoist_core::{
    ContainerState, Containerizer, ContainerizerExt, ErrorKind, LogOptions, LogStream, NetworkMode,
    Owner, PortMapping, PullPolicy, Volume,
};
use hoist_docker::bollard::models::NetworkCreateRequest;
use hoist_docker::{DockerConfig, DockerContainerizer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::with_docker;

fn owner(executor: &hoist_core::ExecutorId, task: &str) -> Owner {
    Owner {
        executor_id: executor.clone(),
        task_id: task.into(),
    }
}

#[tokio::test]
async fn an_unreachable_engine_is_a_typed_error_naming_the_address() {
    let err =
        DockerContainerizer::connect(DockerConfig::new().host("unix:///nonexistent/docker.sock"))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().contains("unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert_eq!(
        err.context_value("address"),
        Some("unix:///nonexistent/docker.sock")
    );

    let err = DockerContainerizer::connect(DockerConfig::new().host("tcp://127.0.0.1:1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("tcp://127.0.0.1:1"), "{err}");

    let err = DockerContainerizer::connect(DockerConfig::new().host("ftp://engine"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn the_api_version_is_negotiated_down_to_the_engines() {
    let Some(docker) = support::connect().await else {
        return;
    };
    let server = docker.client().version().await.unwrap();
    let server_api = server.api_version.unwrap();
    let parse = |v: &str| -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    assert!(
        parse(docker.api_version()) <= parse(&server_api),
        "{} > {server_api}",
        docker.api_version()
    );
    assert!(parse(docker.api_version()) <= (1, 53));
}

#[tokio::test]
async fn the_whole_spec_reaches_the_container() {
    with_docker(|h| async move {
        let dir = tempfile_dir(&h.run);
        std::fs::write(dir.join("file"), "from the host\n").unwrap();
        let mut spec = h.shell("echo \"A=$A\"; pwd; id -u; grep nameserver /etc/resolv.conf; cat /data/file; touch /data/new 2>/dev/null || echo read-only");
        spec.env.insert("A".into(), "one two".into());
        spec.working_dir = Some("/tmp".into());
        spec.user = Some("65534".into());
        spec.dns = vec![IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))];
        spec.labels.insert("team".into(), "web".into());
        spec.resources.cpus = Some(0.5);
        spec.resources.memory = Some(32 << 20);
        spec.volumes = vec![Volume {
            host_path: dir.clone(),
            container_path: "/data".into(),
            read_only: true,
        }];
        let executor = h.executor("spec");
        let id = h.docker.create(&owner(&executor, "spec"), &spec).await.unwrap();
        h.docker.start(&id).await.unwrap();
        let status = h.docker.wait_timeout(&id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(status.code, Some(0), "{status}");
        let out = stdout_of(&h.docker, &id, LogOptions::default()).await;
        assert_eq!(out, "A=one two\n/tmp\n65534\nnameserver 10.9.8.7\nfrom the host\nread-only\n");

        let raw = h.docker.client().inspect_container(id.as_str(), None).await.unwrap();
        let labels = raw.config.unwrap().labels.unwrap();
        assert_eq!(labels["team"], "web");
        assert_eq!(labels["io.hoist.executor-id"], executor.as_str());
        assert_eq!(labels["io.hoist.task-id"], "spec");
        let host = raw.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(32 << 20));
        assert_eq!(host.memory_swap, Some(32 << 20));

        let tail = stdout_of(&h.docker, &id, LogOptions { follow: false, tail: Some(1) }).await;
        assert_eq!(tail, "read-only\n");
        h.docker.remove(&id, false).await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn engine_chosen_ports_are_reported_and_reachable() {
    with_docker(|h| async move {
        let mut spec = h.shell("exec httpd -f -p 8080 -h /www");
        spec.ports = vec![PortMapping::tcp(8080, None)];
        let executor = h.executor("ports");
        let id = h
            .docker
            .create(&owner(&executor, "web"), &spec)
            .await
            .unwrap();
        h.docker.start(&id).await.unwrap();
        let info = h.docker.inspect(&id).await.unwrap();
        assert_eq!(info.state, ContainerState::Running);
        let mapped = info
            .ports
            .iter()
            .find(|p| p.container_port == 8080)
            .expect("port 8080 reported");
        let host_port = mapped.host_port.expect("the Engine chose a host port");
        assert_ne!(host_port, 0);
        let address = *info.addresses.first().expect("a bridge address");
        assert!(!address.is_loopback(), "{address}");
        assert_eq!(
            info.netns,
            Some(format!("/proc/{}/ns/net", info.pid.unwrap()).into())
        );

        let through_host = http_get(IpAddr::V4(Ipv4Addr::LOCALHOST), host_port).await;
        assert!(
            through_host.starts_with("HTTP/1.") && through_host.contains(" 200 "),
            "{through_host}"
        );
        let direct = http_get(address, 8080).await;
        assert!(direct.contains(" 200 "), "{direct}");
        h.docker.remove(&id, true).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn network_modes_host_user_and_none() {
    with_docker(|h| async move {
        let network = h.name("net");
        h.docker
            .client()
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                ..NetworkCreateRequest::default()
            })
            .await
            .unwrap();
        let executor = h.executor("net");
        let result = async {
            let mut user = h.shell("exec sleep 60");
            user.network = Some(NetworkMode::User(network.clone()));
            let on_user = h
                .docker
                .create(&owner(&executor, "user"), &user)
                .await
                .unwrap();
            h.docker.start(&on_user).await.unwrap();
            let info = h.docker.inspect(&on_user).await.unwrap();
            let net = h
                .docker
                .client()
                .inspect_network(&network, None)
                .await
                .unwrap();
            let subnet = net.ipam.unwrap().config.unwrap()[0].subnet.clone().unwrap();
            let prefix = subnet.split('.').take(2).collect::<Vec<_>>().join(".");
            assert_eq!(info.addresses.len(), 1, "{info:?}");
            assert!(
                info.addresses[0].to_string().starts_with(&prefix),
                "{:?} not in {subnet}",
                info.addresses
            );
            assert_eq!(info.details["network_mode"], network);

            let mut host = h.shell("exec sleep 60");
            host.network = Some(NetworkMode::Host);
            host.ports = vec![PortMapping::tcp(18080, None)];
            let on_host = h
                .docker
                .create(&owner(&executor, "host"), &host)
                .await
                .unwrap();
            h.docker.start(&on_host).await.unwrap();
            let info = h.docker.inspect(&on_host).await.unwrap();
            assert_eq!(info.addresses, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            assert_eq!(info.ports[0].host_port, Some(18080));

            let mut none =
                h.shell("ip addr 2>/dev/null | grep -c 'inet ' || cat /proc/net/dev | grep -c ':'");
            none.network = Some(NetworkMode::None);
            let isolated = h
                .docker
                .create(&owner(&executor, "none"), &none)
                .await
                .unwrap();
            h.docker.start(&isolated).await.unwrap();
            h.docker
                .wait_timeout(&isolated, Duration::from_secs(20))
                .await
                .unwrap();
            let info = h.docker.inspect(&isolated).await.unwrap();
            assert!(info.addresses.is_empty(), "{:?}", info.addresses);
            for id in [on_user, on_host, isolated] {
                h.docker.remove(&id, true).await.unwrap();
            }
        };
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
        h.docker.client().remove_network(&network).await.unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

#[tokio::test]
async fn pull_policies() {
    with_docker(|h| async move {
        let executor = h.executor("pull");
        let mut never = h.shell("true");
        never.image = Some(format!("{}-missing:never", h.run));
        never.pull_policy = PullPolicy::Never;
        let err = h
            .docker
            .create(&owner(&executor, "never"), &never)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.to_string()
                .contains(&format!("{}-missing:never", h.run)),
            "{err}"
        );
        assert!(err.to_string().contains("never"), "{err}");

        // A registry on a closed loopback port: the pull cannot reach it.
        let unreachable = "127.0.0.1:1/hoist-missing:1".to_owned();
        for policy in [PullPolicy::IfNotPresent, PullPolicy::Always] {
            let mut spec = h.shell("true");
            spec.image = Some(unreachable.clone());
            spec.pull_policy = policy;
            let err = h
                .docker
                .create(&owner(&executor, "pull"), &spec)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert_eq!(err.context_value("image"), Some(unreachable.as_str()));
            assert!(err.to_string().contains(&unreachable), "{err}");
        }

        // A present image with if-not-present runs without a pull.
        let present = h.shell("exit 0");
        let status = h
            .docker
            .run_to_completion(
                &owner(&executor, "present"),
                &present,
                Duration::from_secs(20),
            )
            .await
            .unwrap();
        assert!(status.success(), "{status}");
    })
    .await;
}

#[tokio::test]
async fn exec_returns_output_and_code_and_times_out() {
    with_docker(|h| async move {
        let executor = h.executor("exec");
        let id = h
            .docker
            .create(&owner(&executor, "exec"), &h.shell("exec sleep 60"))
            .await
            .unwrap();
        let err = h
            .docker
            .exec(&id, &["true".into()], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidState,
            "exec in a created container: {err}"
        );
        h.docker.start(&id).await.unwrap();
        let argv: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 7"]
            .map(String::from)
            .to_vec();
        let out = h
            .docker
            .exec(&id, &argv, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(7));
        assert_eq!(&out.stdout[..], b"out\n");
        assert_eq!(&out.stderr[..], b"err\n");

        let started = std::time::Instant::now();
        let hang: Vec<String> = ["sleep", "30"].map(String::from).to_vec();
        let err = h
            .docker
            .exec(&id, &hang, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(started.elapsed() < Duration::from_secs(10));
        // The timed-out command was killed: only the main process is left.
        let ps: Vec<String> = ["sh", "-c", "ps -o pid,args | grep -c '[s]leep 30' || true"]
            .map(String::from)
            .to_vec();
        let out = h
            .docker
            .exec(&id, &ps, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "the timed-out command is gone"
        );
        h.docker.remove(&id, true).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn logs_follow_a_running_container_until_it_exits() {
    with_docker(|h| async move {
        let executor = h.executor("logs");
        let spec = h.shell("echo one; echo two >&2; sleep 1; echo three");
        let id = h
            .docker
            .create(&owner(&executor, "logs"), &spec)
            .await
            .unwrap();
        h.docker.start(&id).await.unwrap();
        let mut chunks = h
            .docker
            .logs(
                &id,
                LogOptions {
                    follow: true,
                    tail: None,
                },
            )
            .await
            .unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        let read = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.unwrap();
                match chunk.stream {
                    LogStream::Stdout => stdout.push_str(&String::from_utf8_lossy(&chunk.data)),
                    LogStream::Stderr => stderr.push_str(&String::from_utf8_lossy(&chunk.data)),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("the followed stream ends when the container exits");
        assert_eq!(stdout, "one\nthree\n");
        assert_eq!(stderr, "two\n");
        h.docker.remove(&id, false).await.unwrap();
    })
    .await;
}

async fn stdout_of(
    docker: &DockerContainerizer,
    id: &hoist_core::ContainerId,
    options: LogOptions,
) -> String {
    let mut chunks = docker.logs(id, options).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        if chunk.stream == LogStream::Stdout {
            out.extend_from_slice(&chunk.data);
        }
    }
    String::from_utf8(out).unwrap()
}

async fn http_get(address: IpAddr, port: u16) -> String {
    let attempt = async {
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect((address, port)).await {
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
                let mut response = String::new();
                if stream.read_to_string(&mut response).await.is_ok() && !response.is_empty() {
                    return response;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .expect("the server answers")
}

fn tempfile_dir(run: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{run}-volume"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
