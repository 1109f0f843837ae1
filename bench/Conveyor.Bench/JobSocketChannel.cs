using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;

namespace Conveyor.Bench;

/// <summary>How the load generator's calls reach the server: an HTTP request each, or a message each on one shared
/// WebSocket (<c>--transport socket</c>, <c>GET /v1/jobs/socket</c>).</summary>
internal sealed class Transport(HttpClient http, JobSocketChannel? socket)
{
    public HttpClient Http => http;

    public JobSocketChannel? Socket => socket;
}

/// <summary>
/// One WebSocket to /v1/jobs/socket shared by every loop: each call is a message with an id, sent under a lock (a
/// WebSocket takes one send at a time), and a reader hands each answer to the call that waits for its id.
/// </summary>
internal sealed class JobSocketChannel : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly ConcurrentDictionary<long, Call> _waiting = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reading;
    private long _next;

    /// <summary>A call in flight: the message to send, then the answer's status and body once it came.</summary>
    public sealed class Call
    {
        private readonly ArrayBufferWriter<byte> _message = new(4096);
        private TaskCompletionSource<int> _answered = new();

        public byte[] Response = new byte[64 * 1024];
        public int ResponseLength;

        public ArrayBufferWriter<byte> Start()
        {
            _message.ResetWrittenCount();
            _answered = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            return _message;
        }

        public ReadOnlyMemory<byte> Message => _message.WrittenMemory;

        public Task<int> Answered => _answered.Task;

        public void Answer(int status, ReadOnlySpan<byte> body)
        {
            if (body.Length > Response.Length) Response = new byte[body.Length];
            body.CopyTo(Response);
            ResponseLength = body.Length;
            _answered.TrySetResult(status);
        }

        public void Fail(Exception e) => _answered.TrySetException(e);
    }

    private JobSocketChannel(ClientWebSocket socket)
    {
        _socket = socket;
        _reading = Task.Run(ReadAsync);
    }

    public static async Task<JobSocketChannel> ConnectAsync(Uri server, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new UriBuilder(server) { Scheme = "ws", Path = "/v1/jobs/socket" }.Uri, ct);
        return new JobSocketChannel(socket);
    }

    /// <summary>Sends <paramref name="type"/> on <paramref name="queue"/> with <paramref name="body"/>; the status comes back.</summary>
    public async Task<int> SendAsync(Call call, string type, string? queue, ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        var id = Interlocked.Increment(ref _next);
        var message = call.Start();
        using (var w = new Utf8JsonWriter(message, new JsonWriterOptions { SkipValidation = true }))
        {
            w.WriteStartObject();
            w.WriteString("type"u8, type);
            w.WriteNumber("id"u8, id);
            if (queue is not null) w.WriteString("queue"u8, queue);
            w.WritePropertyName("body"u8);
            w.WriteRawValue(body.Span, skipInputValidation: true);
            w.WriteEndObject();
        }
        _waiting[id] = call;
        await _sending.WaitAsync(ct);
        try
        {
            await _socket.SendAsync(call.Message, WebSocketMessageType.Text, endOfMessage: true, ct);
        }
        finally
        {
            _sending.Release();
        }
        return await call.Answered.WaitAsync(ct);
    }

    private async Task ReadAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer.GetMemory(16 * 1024), _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close) break;
                buffer.Advance(result.Count);
                if (!result.EndOfMessage) continue;
                Deliver(buffer.WrittenSpan);
                buffer.ResetWrittenCount();
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
        }
        foreach (var call in _waiting.Values) call.Fail(new WebSocketException("the jobs socket closed"));
    }

    /// <summary>Reads type, id and status (the server writes them first), then gives the call its answer's body.</summary>
    private void Deliver(ReadOnlySpan<byte> message)
    {
        var reader = new Utf8JsonReader(message);
        long id = 0;
        int status = 0;
        var error = false;
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                if (reader.ValueTextEquals("ping"u8))
                {
                    _ = PongAsync();
                    return;
                }
                error = reader.ValueTextEquals("error"u8);
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.GetInt64();
            }
            else if (reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                status = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("body"u8) && !error)
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                if (_waiting.TryRemove(id, out var call)) call.Answer(status, message[start..(int)reader.BytesConsumed]);
                return;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        // An error, or an answer without a body: the whole message is what the caller gets to read.
        if (_waiting.TryRemove(id, out var waiting)) waiting.Answer(status, message);
    }

    private async Task PongAsync()
    {
        await _sending.WaitAsync();
        try
        {
            await _socket.SendAsync("""{"type":"pong"}"""u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
        }
        finally
        {
            _sending.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
        }
        _stop.Cancel();
        await _reading.ContinueWith(_ => { }, TaskScheduler.Default);
        _socket.Dispose();
    }
}
