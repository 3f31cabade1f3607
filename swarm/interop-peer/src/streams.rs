//! The stream protocols the peer speaks through `libp2p-stream`: echo,
//! request, and the perf client and server.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::StreamProtocol;

use crate::node::EventTx;
use crate::{PERF_CHUNK, PERF_PROTOCOL, PeerEvent, PeerId};

/// Accept inbound streams on one protocol, handling each on its own task.
/// (libp2p-stream drops inbound streams if this loop falls behind, so the
/// per-stream work must not run inline.)
pub(crate) async fn serve<F, Fut>(
    mut incoming: libp2p_stream::IncomingStreams,
    protocol: String,
    events: EventTx,
    handler: F,
) where
    F: Fn(libp2p::Stream) -> Fut,
    Fut: Future<Output = std::io::Result<usize>> + Send + 'static,
{
    while let Some((peer, stream)) = incoming.next().await {
        let fut = handler(stream);
        let events = events.clone();
        let protocol = protocol.clone();
        tokio::spawn(async move {
            let ev = match fut.await {
                Ok(bytes_read) => PeerEvent::InboundStream {
                    peer,
                    protocol,
                    bytes_read,
                },
                Err(e) => PeerEvent::Other(format!("inbound {protocol} stream from {peer}: {e}")),
            };
            let _ = events.send(ev);
        });
    }
}

/// Echo: read to EOF, write everything back, close.
pub(crate) async fn echo_stream(mut stream: libp2p::Stream) -> std::io::Result<usize> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    stream.write_all(&buf).await?;
    stream.close().await?;
    Ok(buf.len())
}

/// Perf server: read the u64 length, drain the upload to EOF, send that many
/// bytes, close. Returns the uploaded payload size.
pub(crate) async fn perf_server_stream(mut stream: libp2p::Stream) -> std::io::Result<usize> {
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).await?;
    let to_send = u64::from_be_bytes(len);
    let received = drain(&mut stream).await?;
    send_zeros(&mut stream, to_send).await?;
    stream.close().await?;
    Ok(received as usize)
}

pub(crate) async fn request(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    protocol: StreamProtocol,
    data: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut stream = control
        .open_stream(peer, protocol)
        .await
        .map_err(|e| e.to_string())?;
    let io = async {
        stream.write_all(&data).await?;
        stream.close().await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    io.await.map_err(|e| format!("request stream: {e}"))
}

pub(crate) async fn perf_client(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    up: u64,
    down: u64,
) -> Result<(u64, u64), String> {
    let mut stream = control
        .open_stream(peer, StreamProtocol::new(PERF_PROTOCOL))
        .await
        .map_err(|e| e.to_string())?;
    let io = async {
        stream.write_all(&down.to_be_bytes()).await?;
        send_zeros(&mut stream, up).await?;
        stream.close().await?;
        let received = drain(&mut stream).await?;
        Ok::<_, std::io::Error>((up, received))
    };
    io.await.map_err(|e| format!("perf stream: {e}"))
}

pub(crate) async fn send_zeros(stream: &mut libp2p::Stream, mut n: u64) -> std::io::Result<()> {
    let chunk = [0u8; PERF_CHUNK];
    while n > 0 {
        let k = n.min(PERF_CHUNK as u64) as usize;
        stream.write_all(&chunk[..k]).await?;
        n -= k as u64;
    }
    Ok(())
}

pub(crate) async fn drain(stream: &mut libp2p::Stream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; PERF_CHUNK];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}
