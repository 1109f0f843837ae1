using System.Net.Http.Headers;
using System.Text;
using Conveyor.Amqp;
using RabbitMQ.Client;

namespace Conveyor.Server.Delivery;

/// <summary>
/// The outcome of one delivery to one destination. <see cref="Permanent"/> failures cannot get better by retrying
/// (a missing secret, no RabbitMQ configured): the job dies at once instead of using up its attempts.
/// </summary>
internal readonly record struct DeliveryOutcome(bool Ok, int? Status, string Detail, bool Permanent = false)
{
    public static DeliveryOutcome Failed(string detail, int? status = null) => new(false, status, detail);
    public static DeliveryOutcome Impossible(string detail) => new(false, null, detail, Permanent: true);
}

/// <summary>What every delivery carries besides the payload: the key that stays the same across retries.</summary>
internal static class DeliveryHeaders
{
    public const string IdempotentKey = "x-idempotent-key";
    public const string JobId = "x-conveyor-job-id";
    public const string Attempt = "x-conveyor-attempt";

    /// <summary>The job's own idempotency key when it has one, else one made from its id: both survive retries and restarts.</summary>
    public static string KeyOf(Job job) => job.IdempotencyKey ?? $"conveyor-job-{job.Id}";

    /// <summary>The destination's headers with <c>{{NAME}}</c> resolved; a permanent failure names a variable that is not set.</summary>
    public static bool TryResolve(
        Destination destination, IReadOnlyCollection<string> allowed, out List<KeyValuePair<string, string>> headers, out DeliveryOutcome failure)
    {
        headers = new List<KeyValuePair<string, string>>(destination.Headers.Count);
        failure = default;
        foreach (var (name, value) in destination.Headers)
        {
            // Checked again here: jobs written straight into PostgreSQL (the outbox) never passed the HTTP check.
            if (Destinations.FirstPlaceholderNotIn(value, allowed) is { } refused)
            {
                failure = DeliveryOutcome.Impossible($"header '{name}' names {{{{{refused}}}}}, which this server does not allow (--delivery-secrets)");
                return false;
            }
            if (!Destinations.TryResolve(value, out var resolved, out var missing))
            {
                failure = DeliveryOutcome.Impossible($"header '{name}' needs the environment variable {missing}, which is not set on this server");
                return false;
            }
            headers.Add(new(name, resolved));
        }
        return true;
    }
}

/// <summary>Webhook delivery: the payload as the body; any 2xx is success, anything else a failure with the status and the start of the body.</summary>
internal sealed class HttpDeliverer(ServerOptions options) : IDisposable
{
    private const int BodyExcerptBytes = 512;

    private readonly HttpClient _client = new(new SocketsHttpHandler
    {
        // Fresh DNS every few minutes, and enough connections for the dispatcher's concurrency to one host.
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        MaxConnectionsPerServer = 256,
        AllowAutoRedirect = false,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan, // each delivery has its own timeout
    };

    public async Task<DeliveryOutcome> DeliverAsync(Job job, HttpDestination destination, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!DeliveryHeaders.TryResolve(destination, options.DeliverySecrets, out var headers, out var impossible)) return impossible;
        using var request = new HttpRequestMessage(new HttpMethod(destination.Method), destination.Url);
        request.Content = new ByteArrayContent(job.PayloadJson is { } payload ? Encoding.UTF8.GetBytes(payload) : []);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        foreach (var (name, value) in headers)
        {
            if (name.StartsWith("content-", StringComparison.OrdinalIgnoreCase))
            {
                request.Content.Headers.Remove(name);
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
            else
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }
        request.Headers.Remove(DeliveryHeaders.IdempotentKey);
        request.Headers.TryAddWithoutValidation(DeliveryHeaders.IdempotentKey, DeliveryHeaders.KeyOf(job));
        request.Headers.TryAddWithoutValidation(DeliveryHeaders.JobId, job.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation(DeliveryHeaders.Attempt, job.Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (job.TraceParent is { } trace) request.Headers.TryAddWithoutValidation("traceparent", trace);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is >= 200 and < 300) return new DeliveryOutcome(true, status, $"HTTP {status}");
            var excerpt = await ExcerptAsync(response, deadline.Token).ConfigureAwait(false);
            return DeliveryOutcome.Failed($"HTTP {status} {response.ReasonPhrase}{(excerpt.Length > 0 ? ": " + excerpt : "")}", status);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return DeliveryOutcome.Failed($"no response within {timeout.TotalMilliseconds:0} ms");
        }
        catch (HttpRequestException e)
        {
            return DeliveryOutcome.Failed(e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message);
        }
    }

    private static async Task<string> ExcerptAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            var buffer = new byte[BodyExcerptBytes];
            var read = 0;
            while (read < buffer.Length)
            {
                var n = await body.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                read += n;
            }
            var text = Encoding.UTF8.GetString(buffer, 0, read).ReplaceLineEndings(" ").Trim();
            return read == buffer.Length ? text + "…" : text;
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            return "";
        }
    }

    public void Dispose() => _client.Dispose();
}

/// <summary>
/// RabbitMQ delivery with publisher confirms: counted delivered only once the broker confirms it. Connects on first use
/// to the server's <c>--amqp</c> broker and reconnects by itself; without <c>--amqp</c> an amqp destination cannot work.
/// </summary>
internal sealed class AmqpDeliverer(ServerOptions options, ILogger<AmqpDeliverer> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private IConnection? _connection;
    private AmqpPublisher? _publisher;

    public async Task<DeliveryOutcome> DeliverAsync(Job job, AmqpDestination destination, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (options.AmqpUri is null)
            return DeliveryOutcome.Impossible("this server has no RabbitMQ broker configured for amqp destinations: start it with --amqp amqp://… (or CONVEYOR_AMQP)");
        if (!DeliveryHeaders.TryResolve(destination, options.DeliverySecrets, out var headers, out var impossible)) return impossible;
        var key = DeliveryHeaders.KeyOf(job);
        var properties = new BasicProperties
        {
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
            MessageId = key,
            Headers = new Dictionary<string, object?>
            {
                [DeliveryHeaders.IdempotentKey] = key,
                [DeliveryHeaders.JobId] = job.Id,
                [DeliveryHeaders.Attempt] = job.Attempt,
            },
        };
        foreach (var (name, value) in headers) properties.Headers[name] = value;
        if (job.TraceParent is { } trace) properties.Headers["traceparent"] = trace;
        var body = job.PayloadJson is { } payload ? Encoding.UTF8.GetBytes(payload) : [];

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var publisher = await PublisherAsync(deadline.Token).ConfigureAwait(false);
            await publisher.PublishAsync(destination.Exchange, destination.RoutingKey, properties, body, mandatory: true, deadline.Token).ConfigureAwait(false);
            return new DeliveryOutcome(true, null, "confirmed");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return DeliveryOutcome.Failed($"RabbitMQ did not confirm within {timeout.TotalMilliseconds:0} ms");
        }
        catch (AmqpException e)
        {
            return DeliveryOutcome.Failed(e.Message);
        }
        catch (Exception e) when (AmqpConnections.IsConnectionLoss(e) || e is RabbitMQ.Client.Exceptions.BrokerUnreachableException)
        {
            return DeliveryOutcome.Failed($"RabbitMQ is unreachable: {e.GetBaseException().Message}");
        }
    }

    private async ValueTask<AmqpPublisher> PublisherAsync(CancellationToken cancellationToken)
    {
        if (_publisher is { } ready) return ready;
        await _connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_publisher is { } again) return again;
            var factory = AmqpConnections.Factory(options.AmqpUri!, "conveyor-delivery", TimeSpan.FromSeconds(1));
            // Fails fast while the broker is away: the delivery fails and is retried with backoff like any other failure.
            _connection = await AmqpConnections.ConnectOnceAsync(factory, cancellationToken).ConfigureAwait(false);
            DeliveryLog.AmqpConnected(logger, AmqpConnections.Redacted(options.AmqpUri!));
            return _publisher = new AmqpPublisher(() => _connection);
        }
        finally
        {
            _connecting.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_publisher is { } publisher) await publisher.DisposeAsync().ConfigureAwait(false);
        if (_connection is { } connection)
        {
            try
            {
                await connection.CloseAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
            connection.Dispose();
        }
    }
}
