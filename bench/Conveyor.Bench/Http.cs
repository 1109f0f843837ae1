using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Conveyor.Bench;

/// <summary>The shared HTTP client: one connection pool, no cookies, no decompression, no proxy.</summary>
internal static class Http
{
    public static HttpClient Create() => new(new SocketsHttpHandler
    {
        UseCookies = false,
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        AllowAutoRedirect = false,
        MaxConnectionsPerServer = int.MaxValue,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        ConnectTimeout = TimeSpan.FromSeconds(10),
    })
    {
        // Long-polls wait at most 1 s; anything slower than this is a stuck server.
        Timeout = TimeSpan.FromSeconds(60),
        DefaultRequestVersion = HttpVersion.Version11,
    };
}

/// <summary>
/// One in-flight request slot: a reusable request body (written with <see cref="Utf8JsonWriter"/>)
/// and a reusable response buffer, so the hot loop allocates only what HttpClient itself needs.
/// Not thread-safe: each concurrent loop owns one.
/// </summary>
internal sealed class Connection(Transport transport, ErrorLog errors)
{
    private readonly HttpClient _http = transport.Http;
    private readonly JobSocketChannel.Call? _call = transport.Socket is null ? null : new();
    private readonly ArrayBufferWriter<byte> _body = new(64 * 1024);
    private readonly Utf8JsonWriter _json = new(Stream.Null, new JsonWriterOptions { SkipValidation = true });
    private byte[] _response = new byte[64 * 1024];
    private int _responseLength;

    /// <summary>Body of the last response, valid until the next call.</summary>
    public ReadOnlySpan<byte> Response => _call is null ? _response.AsSpan(0, _responseLength) : _call.Response.AsSpan(0, _call.ResponseLength);

    /// <summary>Starts a new request body; write it, then call <see cref="PostAsync"/>.</summary>
    public Utf8JsonWriter Body()
    {
        _body.ResetWrittenCount();
        _json.Reset(_body);
        return _json;
    }

    /// <summary>POSTs the body written since <see cref="Body"/>; returns the status code (0 on a transport error).</summary>
    public async Task<int> PostAsync(Uri url, CancellationToken ct)
    {
        _json.Flush();
        if (transport.Socket is { } socket)
        {
            var (type, queue) = SocketRoute(url);
            var answered = await socket.SendAsync(_call!, type, queue, _body.WrittenMemory, ct);
            if (answered >= 300) errors.Add($"{type} on the socket -> {answered}: {Encoding.UTF8.GetString(Response)}");
            return answered;
        }
        using var content = new ReadOnlyMemoryContent(_body.WrittenMemory);
        content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            await ReadBodyAsync(response.Content, ct);
            var status = (int)response.StatusCode;
            if (status >= 300)
            {
                errors.Add($"POST {url.AbsolutePath} -> {status}: {Encoding.UTF8.GetString(Response)}");
            }
            return status;
        }
        catch (HttpRequestException e)
        {
            errors.Add($"POST {url.AbsolutePath} failed: {e.Message}");
            _responseLength = 0;
            return 0;
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            errors.Add($"POST {url.AbsolutePath} timed out after {_http.Timeout.TotalSeconds:0} s");
            _responseLength = 0;
            return 0;
        }
    }

    /// <summary>The socket message for an HTTP route the workloads call.</summary>
    private static (string Type, string? Queue) SocketRoute(Uri url)
    {
        var parts = url.AbsolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts switch
        {
            ["v1", "jobs", "ack"] => ("ack", null),
            ["v1", "queues", var queue, "jobs"] => ("enqueue", Uri.UnescapeDataString(queue)),
            ["v1", "queues", var queue, "jobs", "batch"] => ("enqueue_batch", Uri.UnescapeDataString(queue)),
            ["v1", "queues", var queue, "lease"] => ("lease", Uri.UnescapeDataString(queue)),
            _ => throw new NotSupportedException($"{url.AbsolutePath} has no socket message."),
        };
    }

    private async Task ReadBodyAsync(HttpContent content, CancellationToken ct)
    {
        _responseLength = 0;
        await using var stream = await content.ReadAsStreamAsync(ct);
        while (true)
        {
            if (_responseLength == _response.Length)
            {
                Array.Resize(ref _response, _response.Length * 2);
            }
            var n = await stream.ReadAsync(_response.AsMemory(_responseLength), ct);
            if (n == 0)
            {
                return;
            }
            _responseLength += n;
        }
    }
}

/// <summary>Counts failed requests and keeps the first few messages for the report.</summary>
internal sealed class ErrorLog
{
    private readonly List<string> _first = [];
    private long _count;

    public long Count => Interlocked.Read(ref _count);

    public void Add(string message)
    {
        if (Interlocked.Increment(ref _count) <= 3)
        {
            lock (_first)
            {
                _first.Add(message.Length > 300 ? message[..300] + "…" : message);
            }
            Console.Error.WriteLine($"conveyor-bench: {message}");
        }
    }

    public string First()
    {
        lock (_first)
        {
            return _first.Count == 0 ? "" : _first[0];
        }
    }
}
