using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using Conveyor.Submissions;

namespace Conveyor.Server.Submissions;

/// <summary>
/// <c>GET /v1/consume</c>: a consumer on one WebSocket, JSON text messages both ways (docs/submissions.md). Every
/// reservation made on the connection carries its owner id; when the connection ends — closed, aborted, or silent for
/// three heartbeat intervals — they are all released at once and no attempt is counted, so another consumer gets the
/// chunks right away instead of after the lease timeout.
/// </summary>
internal static class ConsumeSocket
{
    public const int DefaultHeartbeatMs = 15_000;

    public static async Task RunAsync(
        HttpContext context, ChunkOperations chunks, ServerOptions options, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<ChunkOperations> log)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await Http.Problems.BadRequest("/v1/consume is a WebSocket: connect with a WebSocket client (Upgrade: websocket).").ExecuteAsync(context);
            return;
        }
        var heartbeat = TimeSpan.FromMilliseconds(DefaultHeartbeatMs);
        if (context.Request.Query["heartbeat_ms"].ToString() is { Length: > 0 } text)
        {
            if (!int.TryParse(text, out var ms) || ms is < 100 or > 300_000)
            {
                await Http.Problems.BadRequest("heartbeat_ms must be between 100 and 300000.").ExecuteAsync(context);
                return;
            }
            heartbeat = TimeSpan.FromMilliseconds(ms);
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        // The connection also ends when the server stops, so shutdown does not wait for consumers to hang up.
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        var connection = new Connection(socket, chunks, options, time, heartbeat, ending.Token);
        await connection.RunAsync();
        var released = await chunks.ReleaseOwnerAsync(connection.Owner, CancellationToken.None);
        if (released > 0) SubmissionLog.Released(log, connection.Owner, released);
    }

    private sealed class Connection(WebSocket socket, ChunkOperations chunks, ServerOptions options, TimeProvider time, TimeSpan heartbeat, CancellationToken aborted)
    {
        // Bounded: a client that stops reading its answers stops getting new work done for it (handlers wait), instead of
        // growing this server's memory.
        private readonly Channel<byte[]> _outbox = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(256) { SingleReader = true });
        private readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        private const int MaxInFlight = 64;
        private readonly SemaphoreSlim _inFlight = new(MaxInFlight, MaxInFlight);
        private readonly List<Task> _handlers = [];
        private long _lastHeard;

        public string Owner { get; } = $"ws-{Guid.NewGuid():N}";

        public async Task RunAsync()
        {
            _lastHeard = time.GetTimestamp();
            var sender = SendLoopAsync();
            var pinger = PingLoopAsync();
            try
            {
                await ReceiveLoopAsync();
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
                // The client went away: what it held is released by the caller.
            }
            finally
            {
                _stop.Cancel();
                Task[] handlers;
                lock (_handlers) handlers = [.. _handlers];
                // Wait for in-flight handlers, so a reservation committed during the close is released too.
                await Task.WhenAll(handlers).ContinueWith(_ => { }, TaskScheduler.Default);
                _outbox.Writer.TryComplete();
                await Task.WhenAll(sender, pinger).ContinueWith(_ => { }, TaskScheduler.Default);
                if (socket.State == WebSocketState.Open || socket.State == WebSocketState.CloseReceived)
                {
                    using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    try
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", closing.Token);
                    }
                    catch (Exception e) when (e is WebSocketException or OperationCanceledException) { }
                }
            }
        }

        private async Task ReceiveLoopAsync()
        {
            var buffer = new ArrayBufferWriter<byte>(16 * 1024);
            while (!_stop.IsCancellationRequested)
            {
                var result = await socket.ReceiveAsync(buffer.GetMemory(16 * 1024), _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close) return;
                buffer.Advance(result.Count);
                if (buffer.WrittenCount > options.MaxBodyBytes)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, $"messages are limited to {options.MaxBodyBytes} bytes", CancellationToken.None);
                    return;
                }
                if (!result.EndOfMessage) continue;
                Interlocked.Exchange(ref _lastHeard, time.GetTimestamp());
                if (result.MessageType != WebSocketMessageType.Text)
                {
                    await SendAsync(w => Error(w, null, 400, "Messages are JSON text, not binary."));
                }
                else
                {
                    // At most MaxInFlight messages handled at once per connection: beyond that the client waits (TCP backpressure).
                    await _inFlight.WaitAsync(_stop.Token);
                    Dispatch(buffer.WrittenSpan);
                }
                buffer.ResetWrittenCount();
            }
        }

        private void Dispatch(ReadOnlySpan<byte> text)
        {
            ConsumeMessage? message;
            try
            {
                message = JsonSerializer.Deserialize(text, SubmissionBodyJson.Default.ConsumeMessage);
            }
            catch (JsonException e)
            {
                Track(Finish(SendAsync(w => Error(w, null, 400, Http.RequestBody.Describe(e)))));
                return;
            }
            if (message is null)
            {
                Track(Finish(SendAsync(w => Error(w, null, 400, "A message must be a JSON object with a type."))));
                return;
            }
            // Each message runs on its own: a reserve waiting for chunks does not hold up a complete sent after it.
            Track(Task.Run(() => Finish(HandleAsync(message))));
        }

        private async Task Finish(Task handling)
        {
            try
            {
                await handling;
            }
            finally
            {
                _inFlight.Release();
            }
        }

        private void Track(Task task)
        {
            lock (_handlers)
            {
                _handlers.RemoveAll(t => t.IsCompleted);
                _handlers.Add(task);
            }
        }

        private async Task HandleAsync(ConsumeMessage m)
        {
            var id = m.Id is { } raw ? raw.GetRawText() : null;
            try
            {
                switch (m.Type)
                {
                    case "ping":
                        await SendAsync(w => Simple(w, "pong", id));
                        return;
                    case "pong":
                        return;
                    case "reserve":
                        if (ChunkOperations.CheckReserve(m.Queue, m.Max, m.WaitMs, m.LeaseMs, m.Strategy, m.PreferDistinct, Owner, out var request, out var wait) is { } bad)
                        {
                            await SendAsync(w => Error(w, id, 400, bad));
                            return;
                        }
                        var reserved = await chunks.ReserveAsync(request, wait, _stop.Token);
                        await SendAsync(w =>
                        {
                            w.WriteStartObject();
                            w.WriteString("type", "chunks");
                            Id(w, id);
                            w.WriteStartArray("chunks");
                            foreach (var chunk in reserved) SubmissionJson.Write(w, chunk, chunks.Objects.Name);
                            w.WriteEndArray();
                            w.WriteEndObject();
                        });
                        return;
                    case "complete" or "fail" or "heartbeat" or "release":
                        if (ChunkOperations.CheckTarget(m.SubmissionId, m.Index, m.LeaseToken) is { } badTarget)
                        {
                            await SendAsync(w => Error(w, id, 400, badTarget));
                            return;
                        }
                        var (submissionId, index, token) = (m.SubmissionId!.Value, m.Index!.Value, m.LeaseToken!);
                        // Finishing work is not cancelled by the connection closing: a result that arrived is kept.
                        var answer = m.Type switch
                        {
                            "complete" => await chunks.CompleteAsync(submissionId, index, token, m.Result, m.ResultBase64, m.Operations, CancellationToken.None),
                            "fail" => await chunks.FailAsync(submissionId, index, token, m.Error, CancellationToken.None),
                            "heartbeat" => await chunks.HeartbeatAsync(submissionId, index, token, m.ExtendMs, CancellationToken.None),
                            _ => await chunks.ReleaseAsync(submissionId, index, token, CancellationToken.None),
                        };
                        if (answer.Status != 200)
                        {
                            await SendAsync(w => Error(w, id, answer.Status, answer.Result.Detail!));
                            return;
                        }
                        await SendAsync(w =>
                        {
                            w.WriteStartObject();
                            w.WriteString("type", "ack");
                            Id(w, id);
                            w.WriteString("outcome", answer.Outcome);
                            w.WritePropertyName("submission");
                            SubmissionJson.Write(w, answer.Result.Submission!);
                            w.WriteEndObject();
                        });
                        return;
                    default:
                        await SendAsync(w => Error(w, id, 400, $"type '{Http.JobRequests.Truncate(m.Type ?? "")}' is not one of reserve, complete, fail, heartbeat, release, ping, pong."));
                        return;
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
            catch (StoreUnavailableException e)
            {
                await SendAsync(w => Error(w, id, 503, $"{e.Message} Nothing was changed; retry later."));
            }
        }

        private async Task SendAsync(Action<Utf8JsonWriter> write)
        {
            var buffer = new ArrayBufferWriter<byte>(256);
            await using (var w = new Utf8JsonWriter(buffer)) write(w);
            try
            {
                await _outbox.Writer.WriteAsync(buffer.WrittenSpan.ToArray(), _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                // The connection is closing; the answer has nobody to go to.
            }
        }

        private async Task SendLoopAsync()
        {
            try
            {
                await foreach (var message in _outbox.Reader.ReadAllAsync())
                {
                    await socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, _stop.Token);
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
                _stop.Cancel();
            }
        }

        /// <summary>Pings every interval; a client silent for three intervals is gone, and its connection is ended.</summary>
        private async Task PingLoopAsync()
        {
            using var timer = new PeriodicTimer(heartbeat, time);
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token))
                {
                    if (time.GetElapsedTime(Interlocked.Read(ref _lastHeard)) > heartbeat * 3)
                    {
                        socket.Abort();
                        _stop.Cancel();
                        return;
                    }
                    await SendAsync(w => Simple(w, "ping", null));
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private static void Simple(Utf8JsonWriter w, string type, string? id)
        {
            w.WriteStartObject();
            w.WriteString("type", type);
            Id(w, id);
            w.WriteEndObject();
        }

        private static void Error(Utf8JsonWriter w, string? id, int status, string detail)
        {
            w.WriteStartObject();
            w.WriteString("type", "error");
            Id(w, id);
            w.WriteNumber("status", status);
            w.WriteString("title", status switch { 400 => "Bad request", 404 => "Not found", 409 => "Conflict", 503 => "Service unavailable", _ => "Error" });
            w.WriteString("detail", detail);
            w.WriteEndObject();
        }

        private static void Id(Utf8JsonWriter w, string? id)
        {
            if (id is null) return;
            w.WritePropertyName("id");
            w.WriteRawValue(id, skipInputValidation: true);
        }
    }
}
