using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;

namespace Conveyor.Client.Internal;

/// <summary>How a <see cref="ChunkWorker"/> reserves and finishes chunks: the HTTP routes, or one WebSocket.</summary>
internal interface IChunkTransport : IAsyncDisposable
{
    Task<IReadOnlyList<ReservedChunk>> ReserveAsync(ChunkReserveBody body, CancellationToken cancellationToken);

    Task<ChunkActionResult> SendAsync(string action, ChunkActionBody body, CancellationToken cancellationToken);
}

internal sealed class HttpChunkTransport(ConveyorClient client) : IChunkTransport
{
    public Task<IReadOnlyList<ReservedChunk>> ReserveAsync(ChunkReserveBody body, CancellationToken cancellationToken) =>
        client.ReserveChunksAsync(body, cancellationToken);

    public Task<ChunkActionResult> SendAsync(string action, ChunkActionBody body, CancellationToken cancellationToken) =>
        client.ChunkActionAsync(action, body, cancellationToken);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// <c>/v1/consume</c>: every call is a JSON message with an id, answered (possibly out of order) by a message echoing
/// it. One connection serves all of a worker's loops; when it breaks, the next call opens a new one (the server has
/// then released what the old one held, without counting an attempt).
/// </summary>
internal sealed class WebSocketChunkTransport(ConveyorClient client, TimeSpan serverHeartbeat) : IChunkTransport
{
    // The server reads at most 64 messages in flight per connection. Long-polling reserves are held to half of that,
    // so completes and heartbeats never queue behind them (a late heartbeat could cost a lease).
    private const int MaxReservesInFlight = 32;

    private readonly SemaphoreSlim _connecting = new(1, 1);
    private readonly SemaphoreSlim _reserving = new(MaxReservesInFlight, MaxReservesInFlight);
    private ConsumeConnection? _connection;

    public async Task<IReadOnlyList<ReservedChunk>> ReserveAsync(ChunkReserveBody body, CancellationToken cancellationToken)
    {
        await _reserving.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var connection = await ConnectionAsync(cancellationToken).ConfigureAwait(false);
            var answer = await connection.CallAsync(
                new ConsumeRequest("reserve", 0, body.Queue, body.Max, body.WaitMs, body.LeaseMs, body.Strategy, body.PreferDistinct), null, cancellationToken)
                .ConfigureAwait(false);
            return answer.Chunks ?? [];
        }
        finally
        {
            _reserving.Release();
        }
    }

    public async Task<ChunkActionResult> SendAsync(string action, ChunkActionBody body, CancellationToken cancellationToken)
    {
        var connection = await ConnectionAsync(cancellationToken).ConfigureAwait(false);
        var answer = await connection.CallAsync(
            new ConsumeRequest(action, 0, SubmissionId: body.SubmissionId, Index: body.Index, LeaseToken: body.LeaseToken, Result: body.Result,
                ResultBase64: body.ResultBase64, Operations: body.Operations, Error: body.Error, ExtendMs: body.ExtendMs),
            body, cancellationToken).ConfigureAwait(false);
        return new ChunkActionResult { Outcome = answer.Outcome ?? "", Submission = answer.Submission ?? new SubmissionInfo() };
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is { } connection)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        _connecting.Dispose();
        _reserving.Dispose();
    }

    private async Task<ConsumeConnection> ConnectionAsync(CancellationToken cancellationToken)
    {
        if (_connection is { IsOpen: true } open)
        {
            return open;
        }

        await _connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_connection is { IsOpen: true } other)
            {
                return other;
            }

            if (_connection is { } broken)
            {
                await broken.DisposeAsync().ConfigureAwait(false);
            }

            _connection = await ConsumeConnection.OpenAsync(client, serverHeartbeat, cancellationToken).ConfigureAwait(false);
            return _connection;
        }
        finally
        {
            _connecting.Release();
        }
    }
}

/// <summary>One open <c>/v1/consume</c> WebSocket: a receive loop matching answers to calls by id, and answering pings.</summary>
internal sealed class ConsumeConnection : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly Uri _server;
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<ConsumeAnswer>> _pending = new();
    private readonly CancellationTokenSource _closing = new();
    private readonly Task _receiving;
    private long _nextId;
    private volatile bool _broken;

    private ConsumeConnection(ClientWebSocket socket, Uri server)
    {
        _socket = socket;
        _server = server;
        _receiving = Task.Run(ReceiveLoopAsync);
    }

    public bool IsOpen => !_broken && _socket.State == WebSocketState.Open;

    public static async Task<ConsumeConnection> OpenAsync(ConveyorClient client, TimeSpan serverHeartbeat, CancellationToken cancellationToken)
    {
        var address = new UriBuilder(new Uri(client.BaseAddress, "v1/consume"))
        {
            Scheme = client.BaseAddress.Scheme == Uri.UriSchemeHttps ? "wss" : "ws",
            Query = "heartbeat_ms=" + ((long)serverHeartbeat.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture),
        }.Uri;
        var socket = new ClientWebSocket();
        if (client.ApiKeyHeader is { } key)
        {
            socket.Options.SetRequestHeader("Authorization", key.ToString());
        }

        socket.Options.SetRequestHeader("User-Agent", "conveyor-dotnet/1.0");
        try
        {
            await socket.ConnectAsync(address, cancellationToken).ConfigureAwait(false);
        }
        catch (WebSocketException exception)
        {
            socket.Dispose();
            throw new ServerUnavailableException(
                $"could not open the consumer WebSocket at {address} ({exception.Message}); check that the server is running and the key has the consumer role",
                statusCode: null, exception);
        }

        return new ConsumeConnection(socket, client.BaseAddress);
    }

    /// <summary>Sends <paramref name="request"/> with a fresh id and waits for its answer; an error answer throws the SDK's exception for it.</summary>
    public async Task<ConsumeAnswer> CallAsync(ConsumeRequest request, ChunkActionBody? target, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextId);
        var answer = new TaskCompletionSource<ConsumeAnswer>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = answer;
        try
        {
            if (_broken)
            {
                throw Broken(null);
            }

            var bytes = JsonSerializer.SerializeToUtf8Bytes(request with { Id = id }, SubmissionJsonContext.Default.ConsumeRequest);
            await _sending.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await _socket.SendAsync(bytes, WebSocketMessageType.Text, endOfMessage: true, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is WebSocketException or IOException or ObjectDisposedException)
            {
                _broken = true;
                throw Broken(exception);
            }
            finally
            {
                _sending.Release();
            }

            var reply = await answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return reply.Type == "error" ? throw Refused(reply, target) : reply;
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _broken = true;
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                // A polite close; the server then releases whatever is still reserved on this connection.
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "worker stopping", deadline.Token).ConfigureAwait(false);
            }
        }
        catch (Exception exception) when (exception is WebSocketException or OperationCanceledException or IOException)
        {
        }

        await _closing.CancelAsync().ConfigureAwait(false);
        await _receiving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _socket.Dispose();
        _closing.Dispose();
        _sending.Dispose();
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        Exception? failure = null;
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer.GetMemory(16 * 1024), _closing.Token).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                buffer.Advance(result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }

                var answer = JsonSerializer.Deserialize(buffer.WrittenSpan, SubmissionJsonContext.Default.ConsumeAnswer);
                buffer.ResetWrittenCount();
                if (answer is null)
                {
                    continue;
                }

                if (answer.Type == "ping")
                {
                    // Answered off this loop: a send waiting behind a large complete must not stop us reading.
                    _ = PongAsync();
                }
                else if (answer.Id is { ValueKind: JsonValueKind.Number } raw && raw.TryGetInt64(out var id) && _pending.TryGetValue(id, out var call))
                {
                    call.TrySetResult(answer);
                }
            }
        }
        catch (Exception exception) when (exception is WebSocketException or IOException or OperationCanceledException or JsonException or ObjectDisposedException)
        {
            failure = exception;
        }
        finally
        {
            _broken = true;
            foreach (var call in _pending.Values)
            {
                call.TrySetException(Broken(failure));
            }
        }
    }

    private async Task PongAsync()
    {
        try
        {
            await _sending.WaitAsync(_closing.Token).ConfigureAwait(false);
            try
            {
                await _socket.SendAsync("""{"type":"pong"}"""u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, _closing.Token).ConfigureAwait(false);
            }
            finally
            {
                _sending.Release();
            }
        }
        catch (Exception exception) when (exception is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            _broken = true;
        }
    }

    private ServerUnavailableException Broken(Exception? inner) =>
        new($"the consumer WebSocket to {_server} closed; chunks reserved on it were released by the server, a new connection is opened for the next call",
            statusCode: null, inner);

    private static ConveyorException Refused(ConsumeAnswer error, ChunkActionBody? target)
    {
        var message = error.Detail ?? error.Title ?? $"the server refused the message ({error.Status})";
        var status = (HttpStatusCode)(error.Status ?? 400);
        ConveyorException exception = error.Status switch
        {
            404 => new SubmissionNotFoundException(message, target?.SubmissionId, status),
            409 when target is not null => new ChunkLeaseLostException(message, target.SubmissionId, target.Index, status),
            409 => new SubmissionConflictException(message, null, null, status),
            400 or 413 => new InvalidRequestException(message, status),
            401 or 403 => new AccessDeniedException(message, status),
            >= 500 => new ServerUnavailableException(message, status),
            _ => new ConveyorException(message, status),
        };
        exception.Title = error.Title;
        return exception;
    }
}
