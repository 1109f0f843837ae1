using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Conveyor.Server.Tests;

/// <summary>One request the receiver got, and the status it answered with.</summary>
public sealed record ReceivedHook(string Path, string Method, IReadOnlyDictionary<string, string> Headers, string Body, int Status, long Sequence);

/// <summary>
/// A real HTTP listener on a loopback port standing in for a webhook consumer. <see cref="Respond"/> decides each
/// answer (status, and an optional delay); tests wait for requests with <see cref="WaitForAsync"/>, never by sleeping.
/// Also linked into the PostgreSQL and RabbitMQ test projects.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedHook> _received = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private long _sequence;
    private int _inFlight;

    private WebhookReceiver(WebApplication app) => _app = app;

    /// <summary>Answers a request (path, body, how many earlier requests had this path) with a status and a delay; 200 at once by default.</summary>
    public Func<string, string, int, (int Status, TimeSpan Delay)> Respond { get; set; } = (_, _, _) => (200, TimeSpan.Zero);

    public Uri BaseAddress { get; private set; } = null!;

    public IReadOnlyList<ReceivedHook> Received => [.. _received.OrderBy(r => r.Sequence)];

    /// <summary>Most requests this receiver was handling at the same moment.</summary>
    public int MaxInFlight { get; private set; }

    public string Url(string path) => new Uri(BaseAddress, path).ToString();

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        var perPath = new ConcurrentDictionary<string, int>();
        app.Map("/{**path}", async (HttpContext context) =>
        {
            var inFlight = Interlocked.Increment(ref receiver._inFlight);
            lock (receiver._received) receiver.MaxInFlight = Math.Max(receiver.MaxInFlight, inFlight);
            try
            {
                using var reader = new StreamReader(context.Request.Body);
                var body = await reader.ReadToEndAsync();
                var path = context.Request.Path.Value ?? "/";
                var earlier = perPath.AddOrUpdate(path, 0, (_, n) => n + 1);
                var (status, delay) = receiver.Respond(path, body, earlier);
                if (delay > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(delay, context.RequestAborted);
                    }
                    catch (OperationCanceledException)
                    {
                        return; // the dispatcher gave up (timeout): nothing to record as answered
                    }
                }
                var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
                receiver._received.Enqueue(new ReceivedHook(path, context.Request.Method, headers, body, status, Interlocked.Increment(ref receiver._sequence)));
                receiver._arrived.Release();
                context.Response.StatusCode = status;
                if (status >= 300) await context.Response.WriteAsync($"receiver says no ({status}) for {path}");
            }
            finally
            {
                Interlocked.Decrement(ref receiver._inFlight);
            }
        });
        await app.StartAsync();
        receiver.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
        return receiver;
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
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
