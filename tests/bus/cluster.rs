//! A three-node NATS JetStream cluster on loopback: real `nats-server` processes joined by
//! routes, each with its own store on disk, any of which can be killed with SIGKILL and
//! started again on the same ports and store.

use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::Info;
use async_nats::jetstream::ErrorCode;

use super::{free_port, wait_until_async, NatsServer};

pub const CLUSTER_NAME: &str = "tocsin-test";

pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` nodes named `n1`… and waits until each accepts connections.
    pub fn start(n: usize) -> NatsCluster {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes: Vec<NatsServer> = (0..n)
            .map(|i| {
                let own = routes.get(i).copied().unwrap_or_default();
                let others = routes
                    .iter()
                    .filter(|p| **p != own)
                    .map(|p| format!("nats://127.0.0.1:{p}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let extra = vec![
                    "--cluster_name".to_string(),
                    CLUSTER_NAME.to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{own}"),
                    "--routes".to_string(),
                    others,
                ];
                NatsServer::prepare(free_port(), Some(format!("n{}", i + 1)), extra)
            })
            .collect();
        // All at once: a node alone waits for its peers before JetStream is up.
        for node in &mut nodes {
            node.launch();
        }
        for node in &mut nodes {
            node.wait_accepting();
        }
        NatsCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// The node of that server name.
    pub fn node(&mut self, name: &str) -> &mut NatsServer {
        self.nodes
            .iter_mut()
            .find(|n| n.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    /// URLs of the nodes running now.
    fn live_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(NatsServer::url)
            .collect()
    }

    async fn client(&self) -> Option<async_nats::Client> {
        let addrs: Vec<async_nats::ServerAddr> = self
            .live_urls()
            .iter()
            .filter_map(|u| u.parse().ok())
            .collect();
        let connect = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(addrs.len().max(1))
            .connect(addrs);
        tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .ok()?
            .ok()
    }

    /// Waits until the cluster answers JetStream requests (its meta leader is elected).
    pub async fn wait_jetstream(&self) {
        wait_until_async(
            Duration::from_secs(60),
            "JetStream on the cluster",
            || async {
                let client = self.client().await?;
                let js = async_nats::jetstream::ContextBuilder::new()
                    .timeout(Duration::from_secs(1))
                    .build(client);
                // "No such stream" is an answer of the metadata leader: JetStream is up.
                // (`query_account` does not parse nats-server 2.9's reply.)
                match js.get_stream("NO_SUCH_STREAM").await {
                    Ok(_) => Some(()),
                    Err(e) => match e.kind() {
                        GetStreamErrorKind::JetStream(j)
                            if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                        {
                            Some(())
                        }
                        _ => None,
                    },
                }
            },
        )
        .await;
    }

    /// The stream as a live node describes it.
    pub async fn stream_info(&self, stream: &str) -> Option<Info> {
        let client = self.client().await?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client);
        let mut s = js.get_stream(stream).await.ok()?;
        s.info().await.ok().cloned()
    }

    pub async fn stream_leader(&self, stream: &str) -> Option<String> {
        self.stream_info(stream).await?.cluster?.leader
    }

    /// Waits until the stream has a leader and every replica is current.
    pub async fn wait_stream_healthy(&self, stream: &str, replicas: usize) -> Info {
        wait_until_async(
            Duration::from_secs(90),
            &format!("stream {stream} with a leader and {replicas} current replicas"),
            || async {
                let info = self.stream_info(stream).await?;
                let c = info.cluster.as_ref()?;
                c.leader.as_ref()?;
                let current = c
                    .replicas
                    .iter()
                    .filter(|p| p.current && !p.offline)
                    .count();
                (current + 1 >= replicas).then_some(info)
            },
        )
        .await
    }

    /// A URL of a live node, for reading the stream.
    pub fn any_url(&self) -> String {
        self.live_urls()
            .into_iter()
            .next()
            .expect("a live node in the cluster")
    }
}
