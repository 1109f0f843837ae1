using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;

namespace Conveyor.Server.Sockets;

/// <summary>
/// The mechanics both WebSocket endpoints share (<c>/v1/consume</c>, <c>/v1/jobs/socket</c>): JSON text messages both
/// ways, each handled on its own so a long poll does not hold up the messages behind it, at most
/// <see cref="MaxInFlight"/> at once (beyond that the client waits on TCP), answers through one bounded outbox, a JSON
/// ping every heartbeat and the end of the connection after three silent ones. Subclasses parse and answer messages.
/// </summary>
internal abstract class MessageSocket(WebSocket socket, long maxMessageBytes, TimeProvider time, TimeSpan heartbeat, ILogger log, CancellationToken aborted)
{
    private const int DefaultHeartbeatMs = 15_000;
    private const int MaxInFlight = 64;

    // Bounded: a client that stops reading its answers stops getting new work done for it (handlers wait), instead of
    // growing this server's memory.
    private readonly Channel<ReadOnlyMemory<byte>> _outbox = Channel.CreateBounded<ReadOnlyMemory<byte>>(new BoundedChannelOptions(256) { SingleReader = true });
    private readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);
    private readonly SemaphoreSlim _inFlight = new(MaxInFlight, MaxInFlight);
    private readonly List<Task> _handlers = [];
    private long _lastHeard;

    /// <summary>Cancelled when the connection ends: long polls stop waiting.</summary>
    protected CancellationToken Stopping => _stop.Token;

    /// <summary>
    /// Upgrades the request (a 400 problem when it is not a WebSocket request or its <c>heartbeat_ms</c> is out of
    /// range), runs the connection <paramref name="create"/> makes until it ends, then <paramref name="ended"/>.
    /// </summary>
    public static async Task ServeAsync<T>(
        HttpContext context, IHostApplicationLifetime lifetime, Func<WebSocket, TimeSpan, CancellationToken, T> create, Func<T, Task> ended)
        where T : MessageSocket
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await Http.Problems.BadRequest($"{context.Request.Path} is a WebSocket: connect with a WebSocket client (Upgrade: websocket).").ExecuteAsync(context);
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
        // The connection also ends when the server stops, so shutdown does not wait for clients to hang up.
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        var connection = create(socket, heartbeat, ending.Token);
        await connection.RunAsync();
        await ended(connection);
    }

    /// <summary>Runs until the client closes, goes silent or the server stops; returns once every handler has finished.</summary>
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
            // Wait for in-flight handlers, so what one took during the close is released too.
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

    /// <summary>
    /// Handles one whole text message. Runs on the receive loop: parse here (the span is reused afterwards), then call
    /// exactly one of <see cref="Handle"/> (work), <see cref="Reply"/> (an answer alone) or <see cref="Ignore"/>.
    /// </summary>
    protected abstract void Dispatch(ReadOnlySpan<byte> text);

    /// <summary>
    /// Runs a message's work on the thread pool, counted against the in-flight limit. A store that cannot be reached
    /// answers 503 and a failure 500 (logged), under the message's <paramref name="id"/>.
    /// </summary>
    protected void Handle(string? id, string type, Func<Task> work) => Track(Task.Run(() => Finish(AnsweringFailures(id, type, work))));

    /// <summary>Answers without further work (a malformed message).</summary>
    protected void Reply(Action<Utf8JsonWriter> write) => Track(Finish(SendAsync(write)));

    /// <summary>Takes a message that needs neither work nor an answer (a pong).</summary>
    protected void Ignore() => _inFlight.Release();

    /// <summary>Accepts WebSocket upgrades on one path only: elsewhere the middleware would cost every request a look.</summary>
    public static void UseWebSocketsAt(WebApplication app, string path) =>
        // Protocol keep-alives as well as our JSON pings: proxies see traffic even while a client is busy.
        app.UseWhen(context => context.Request.Path.StartsWithSegments(path),
            branch => branch.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(30) }));

    private async Task ReceiveLoopAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        while (!_stop.IsCancellationRequested)
        {
            var result = await socket.ReceiveAsync(buffer.GetMemory(16 * 1024), _stop.Token);
            if (result.MessageType == WebSocketMessageType.Close) return;
            buffer.Advance(result.Count);
            if (buffer.WrittenCount > maxMessageBytes)
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, $"messages are limited to {maxMessageBytes} bytes", CancellationToken.None);
                return;
            }
            if (!result.EndOfMessage) continue;
            Interlocked.Exchange(ref _lastHeard, time.GetTimestamp());
            await _inFlight.WaitAsync(_stop.Token);
            if (result.MessageType != WebSocketMessageType.Text)
            {
                Reply(w => Error(w, null, 400, "Messages are JSON text, not binary."));
            }
            else
            {
                Dispatch(buffer.WrittenSpan);
            }
            buffer.ResetWrittenCount();
        }
    }

    private async Task AnsweringFailures(string? id, string type, Func<Task> work)
    {
        try
        {
            await work();
        }
        catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
        {
        }
        catch (StoreUnavailableException e)
        {
            await SendAsync(w => Error(w, id, 503, Http.Problems.UnavailableDetail(e)));
        }
        catch (Exception e)
        {
            MessageSocketLog.Failed(log, type, e);
            await SendAsync(w => Error(w, id, 500, "The server failed to handle this message; see the server log."));
        }
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
            // Pruned now and then rather than on every message: a scan per message would cost the hot path.
            if (_handlers.Count >= 2 * MaxInFlight) _handlers.RemoveAll(t => t.IsCompleted);
            _handlers.Add(task);
        }
    }

    /// <summary>Queues one answer; dropped when the connection is closing (nobody is left to read it).</summary>
    protected async Task SendAsync(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        await using (var w = new Utf8JsonWriter(buffer)) write(w);
        try
        {
            // The buffer is this answer's alone, so it is handed over as it is, not copied.
            await _outbox.Writer.WriteAsync(buffer.WrittenMemory, _stop.Token);
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

    protected static void Simple(Utf8JsonWriter w, string type, string? id)
    {
        w.WriteStartObject();
        w.WriteString("type", type);
        Id(w, id);
        w.WriteEndObject();
    }

    protected static void Error(Utf8JsonWriter w, string? id, int status, string detail)
    {
        w.WriteStartObject();
        w.WriteString("type", "error");
        Id(w, id);
        w.WriteNumber("status", status);
        w.WriteString("title", Http.Problems.Title(status));
        w.WriteString("detail", detail);
        w.WriteEndObject();
    }

    protected static void Id(Utf8JsonWriter w, string? id)
    {
        if (id is null) return;
        w.WritePropertyName("id");
        w.WriteRawValue(id, skipInputValidation: true);
    }
}

internal static partial class MessageSocketLog
{
    [LoggerMessage(EventId = 6101, Level = LogLevel.Error, Message = "A WebSocket {Type} message failed.")]
    public static partial void Failed(ILogger logger, string type, Exception exception);
}
