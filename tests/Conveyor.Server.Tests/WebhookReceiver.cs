using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Conveyor.Server.Tests;

/// <summary>One request the receiver got, and the status it answered with. <see cref="Sequence"/> is its place in the order of arrival.</summary>
public sealed record ReceivedHook(string Path, string Method, IReadOnlyDictionary<string, string> Headers, string Body, int Status, long Sequence);

/// <summary>
/// A real HTTP listener on a loopback port standing in for a webhook consumer. <see cref="Respond"/> decides each
/// answer (status, and an optional delay); tests wait for requests with <see cref="WaitForAsync"/>, never by sleeping.
/// Built on <see cref="HttpListener"/> so that test projects linking it (PostgreSQL, RabbitMQ) need no ASP.NET Core.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentQueue<ReceivedHook> _received = new();
    private readonly ConcurrentDictionary<string, int> _perPath = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private Task _accepting = Task.CompletedTask;
    private long _sequence;
    private int _inFlight;
    private int _maxInFlight;

    /// <summary>Answers a request (path, body, how many earlier requests had this path) with a status and a delay; 200 at once by default.</summary>
    public Func<string, string, int, (int Status, TimeSpan Delay)> Respond { get; set; } = (_, _, _) => (200, TimeSpan.Zero);

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The answered requests in the order they arrived.</summary>
    public IReadOnlyList<ReceivedHook> Received => [.. _received.OrderBy(r => r.Sequence)];

    /// <summary>Most requests this receiver was handling at the same moment.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public string Url(string path) => new Uri(BaseAddress, path.TrimStart('/')).ToString();

    public static Task<WebhookReceiver> StartAsync()
    {
        var receiver = new WebhookReceiver();
        // HttpListener cannot pick a port itself: take a free one from the kernel, then listen on it.
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            receiver.BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}/");
            probe.Stop();
        }
        receiver._listener.Prefixes.Add(receiver.BaseAddress.ToString());
        receiver._listener.Start();
        receiver._accepting = Task.Run(receiver.AcceptLoopAsync);
        return Task.FromResult(receiver);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var inFlight = Interlocked.Increment(ref _inFlight);
        int seen;
        while ((seen = Volatile.Read(ref _maxInFlight)) < inFlight && Interlocked.CompareExchange(ref _maxInFlight, inFlight, seen) != seen) { }
        // Numbered on arrival, not once answered: a sender may send its next request the moment this one is answered,
        // and that one could otherwise be numbered first (a partition's order would look broken when it was not).
        var sequence = Interlocked.Increment(ref _sequence);
        try
        {
            using var reader = new StreamReader(context.Request.InputStream);
            var body = await reader.ReadToEndAsync();
            var path = context.Request.Url!.AbsolutePath;
            var earlier = _perPath.AddOrUpdate(path, 0, (_, n) => n + 1);
            var (status, delay) = Respond(path, body, earlier);
            if (delay > TimeSpan.Zero) await Task.Delay(delay, _stopping.Token);
            var headers = context.Request.Headers.AllKeys.Where(k => k is not null)
                .ToDictionary(k => k!.ToLowerInvariant(), k => context.Request.Headers[k]!);
            context.Response.StatusCode = status;
            var text = status >= 300 ? System.Text.Encoding.UTF8.GetBytes($"receiver says no ({status}) for {path}") : [];
            await context.Response.OutputStream.WriteAsync(text);
            context.Response.Close();
            // Recorded once answered; a request whose sender gave up (timeout) may still be recorded: tests look at paths.
            _received.Enqueue(new ReceivedHook(path, context.Request.HttpMethod, headers, body, status, sequence));
            _arrived.Release();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The sender went away or the receiver is stopping.
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>Waits until the answered requests satisfy <paramref name="done"/>; fails the test after the timeout.</summary>
    public async Task<IReadOnlyList<ReceivedHook>> WaitForAsync(Func<IReadOnlyList<ReceivedHook>, bool> done, TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var now = Received;
            if (done(now)) return now;
            try
            {
                await _arrived.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"The webhook receiver did not get the expected requests in time; it got {now.Count}: " +
                    string.Join(", ", now.Take(20).Select(r => $"{r.Method} {r.Path} -> {r.Status}")));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Close();
        await _accepting;
        _stopping.Dispose();
    }
}
