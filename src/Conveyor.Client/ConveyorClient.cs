using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Client.Internal;

namespace Conveyor.Client;

/// <summary>
/// A thin client for the Conveyor v1 HTTP API. Every failure surfaces as <see cref="ConveyorException"/>;
/// cancellation through the token surfaces as <see cref="OperationCanceledException"/>.
/// </summary>
/// <remarks>Thread-safe: one instance can serve a whole application, like the <see cref="HttpClient"/> it wraps.</remarks>
public sealed class ConveyorClient : IDisposable
{
    private static readonly ProductInfoHeaderValue UserAgent = new("conveyor-dotnet", "1.0");

    private readonly HttpClient _http;
    private readonly bool _ownsHttpClient;

    /// <summary>Creates a client with its own <see cref="HttpClient"/>, disposed with this client.</summary>
    public ConveyorClient(Uri baseAddress)
        : this(new HttpClient(), baseAddress, ownsHttpClient: true)
    {
    }

    /// <summary>
    /// Wraps an existing <see cref="HttpClient"/> (for example one from IHttpClientFactory), which stays the caller's to dispose.
    /// </summary>
    /// <param name="httpClient">The client to send requests with.</param>
    /// <param name="baseAddress">The server's address; defaults to <paramref name="httpClient"/>'s BaseAddress.</param>
    public ConveyorClient(HttpClient httpClient, Uri? baseAddress = null)
        : this(httpClient, baseAddress ?? httpClient?.BaseAddress, ownsHttpClient: false)
    {
    }

    private ConveyorClient(HttpClient httpClient, Uri? baseAddress, bool ownsHttpClient)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        if (baseAddress is null || !baseAddress.IsAbsoluteUri)
        {
            throw new ArgumentException("The server address must be an absolute URI such as http://127.0.0.1:5080/.", nameof(baseAddress));
        }

        _http = httpClient;
        _ownsHttpClient = ownsHttpClient;

        // A trailing slash keeps a path prefix (http://host/conveyor/) when relative routes are resolved against it.
        BaseAddress = baseAddress.AbsoluteUri.EndsWith('/') ? baseAddress : new Uri(baseAddress.AbsoluteUri + "/");
    }

    /// <summary>The server address every route is resolved against.</summary>
    public Uri BaseAddress { get; }

    /// <summary>Enqueues one job (<c>POST /v1/queues/{queue}/jobs</c>).</summary>
    public async Task<EnqueueResult> EnqueueAsync(string queue, EnqueueRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var response = await SendAsync(
            HttpMethod.Post, $"v1/queues/{Segment(queue)}/jobs", Json(request, ClientJsonContext.Default.EnqueueRequest), cancellationToken)
            .ConfigureAwait(false);
        var job = await ReadAsync(response, ClientJsonContext.Default.JobInfo, cancellationToken).ConfigureAwait(false);

        // 201 is a new job; 200 means the idempotency key matched an existing one.
        return new EnqueueResult(job, Replayed: response.StatusCode == HttpStatusCode.OK);
    }

    /// <summary>Enqueues many jobs in one request (<c>POST /v1/queues/{queue}/jobs/batch</c>); results are in request order.</summary>
    public async Task<BatchEnqueueResult> EnqueueBatchAsync(
        string queue, IReadOnlyList<EnqueueRequest> requests, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        using var response = await SendAsync(
            HttpMethod.Post,
            $"v1/queues/{Segment(queue)}/jobs/batch",
            Json(requests, ClientJsonContext.Default.IReadOnlyListEnqueueRequest),
            cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.BatchEnqueueResult, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Leases up to <paramref name="max"/> jobs (<c>POST /v1/queues/{queue}/lease</c>), waiting up to
    /// <paramref name="waitMs"/> for one to become available. Returns an empty list when none did.
    /// </summary>
    public async Task<IReadOnlyList<JobInfo>> LeaseAsync(
        string queue,
        int max = 1,
        int leaseMs = 30_000,
        int waitMs = 0,
        string? worker = null,
        CancellationToken cancellationToken = default)
    {
        var body = new LeaseBody(max, leaseMs, waitMs, worker);
        using var response = await SendAsync(
            HttpMethod.Post, $"v1/queues/{Segment(queue)}/lease", Json(body, ClientJsonContext.Default.LeaseBody), cancellationToken)
            .ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NoContent)
        {
            return [];
        }

        return await ReadAsync(response, ClientJsonContext.Default.IReadOnlyListJobInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Extends a lease and optionally records progress (<c>POST /v1/jobs/{id}/heartbeat</c>).</summary>
    public Task<JobInfo> HeartbeatAsync(
        long id, string leaseToken, int? extendMs = null, JsonElement? progress = null, CancellationToken cancellationToken = default) =>
        SendForJobAsync(
            HttpMethod.Post,
            $"v1/jobs/{Id(id)}/heartbeat",
            Json(new HeartbeatBody(leaseToken, extendMs, progress), ClientJsonContext.Default.HeartbeatBody),
            cancellationToken);

    /// <summary>Completes a leased job (<c>POST /v1/jobs/{id}/complete</c>). A stale token is refused with 409.</summary>
    public Task<JobInfo> CompleteAsync(
        long id, string leaseToken, JsonElement? result = null, CancellationToken cancellationToken = default) =>
        SendForJobAsync(
            HttpMethod.Post,
            $"v1/jobs/{Id(id)}/complete",
            Json(new CompleteBody(leaseToken, result), ClientJsonContext.Default.CompleteBody),
            cancellationToken);

    /// <summary>
    /// Reports a failed attempt (<c>POST /v1/jobs/{id}/fail</c>). The job is scheduled for a retry while attempts
    /// remain (after <paramref name="retryInMs"/>, or the server's backoff), and is dead otherwise or when <paramref name="dead"/> is true.
    /// </summary>
    public Task<JobInfo> FailAsync(
        long id,
        string leaseToken,
        string error,
        long? retryInMs = null,
        bool dead = false,
        string? stack = null,
        CancellationToken cancellationToken = default) =>
        SendForJobAsync(
            HttpMethod.Post,
            $"v1/jobs/{Id(id)}/fail",
            Json(new FailBody(leaseToken, error, stack, retryInMs, dead ? true : null), ClientJsonContext.Default.FailBody),
            cancellationToken);

    /// <summary>
    /// Completes and fails many jobs in one call (<c>POST /v1/jobs/ack</c>). Per-item outcomes (200, 404, 409) are
    /// returned rather than thrown: completes first, then fails, in request order.
    /// </summary>
    public async Task<IReadOnlyList<AckItemResult>> AckAsync(AckRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var response = await SendAsync(
            HttpMethod.Post, "v1/jobs/ack", Json(request, ClientJsonContext.Default.AckRequest), cancellationToken).ConfigureAwait(false);
        var answer = await ReadAsync(response, ClientJsonContext.Default.AckResponse, cancellationToken).ConfigureAwait(false);
        return answer.Results;
    }

    /// <summary>Cancels a job that has not finished (<c>POST /v1/jobs/{id}/cancel</c>); 409 when it already has.</summary>
    public Task<JobInfo> CancelAsync(long id, CancellationToken cancellationToken = default) =>
        SendForJobAsync(HttpMethod.Post, $"v1/jobs/{Id(id)}/cancel", content: null, cancellationToken);

    /// <summary>Makes a dead or cancelled job available again with its attempts reset (<c>POST /v1/jobs/{id}/retry</c>).</summary>
    public Task<JobInfo> RetryAsync(long id, CancellationToken cancellationToken = default) =>
        SendForJobAsync(HttpMethod.Post, $"v1/jobs/{Id(id)}/retry", content: null, cancellationToken);

    /// <summary>Reads one job (<c>GET /v1/jobs/{id}</c>); an unknown id throws with status 404.</summary>
    public Task<JobInfo> GetJobAsync(long id, CancellationToken cancellationToken = default) =>
        SendForJobAsync(HttpMethod.Get, $"v1/jobs/{Id(id)}", content: null, cancellationToken);

    /// <summary>Reads a job's history, oldest first (<c>GET /v1/jobs/{id}/events</c>).</summary>
    public async Task<IReadOnlyList<JobEvent>> GetEventsAsync(long id, CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(HttpMethod.Get, $"v1/jobs/{Id(id)}/events", content: null, cancellationToken)
            .ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.IReadOnlyListJobEvent, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Searches jobs, newest first (<c>GET /v1/jobs</c>). Pass <see cref="JobPage.NextCursor"/> back as
    /// <paramref name="cursor"/> for the next page.
    /// </summary>
    public async Task<JobPage> SearchJobsAsync(
        JobSearch? filters = null, string? cursor = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        var query = new StringBuilder("v1/jobs");
        var separator = '?';
        void Add(string name, string? value)
        {
            if (value is not null)
            {
                query.Append(separator).Append(name).Append('=').Append(Uri.EscapeDataString(value));
                separator = '&';
            }
        }

        Add("queue", filters?.Queue);
        Add("state", filters?.State);
        Add("kind", filters?.Kind);
        Add("tag", filters?.Tag);
        Add("cursor", cursor);
        Add("limit", limit?.ToString(CultureInfo.InvariantCulture));

        using var response = await SendAsync(HttpMethod.Get, query.ToString(), content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.JobPage, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lists every queue with its per-state counts (<c>GET /v1/queues</c>).</summary>
    public async Task<IReadOnlyList<QueueInfo>> ListQueuesAsync(CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(HttpMethod.Get, "v1/queues", content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.IReadOnlyListQueueInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops leasing from a queue; it still accepts jobs (<c>POST /v1/queues/{queue}/pause</c>).</summary>
    public Task<QueueInfo> PauseQueueAsync(string queue, CancellationToken cancellationToken = default) =>
        SendForQueueAsync($"v1/queues/{Segment(queue)}/pause", cancellationToken);

    /// <summary>Resumes leasing from a paused queue (<c>POST /v1/queues/{queue}/resume</c>).</summary>
    public Task<QueueInfo> ResumeQueueAsync(string queue, CancellationToken cancellationToken = default) =>
        SendForQueueAsync($"v1/queues/{Segment(queue)}/resume", cancellationToken);

    /// <summary>Reads server-wide counts and totals since start (<c>GET /v1/stats</c>).</summary>
    public async Task<ServerStats> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(HttpMethod.Get, "v1/stats", content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.ServerStats, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (_ownsHttpClient)
        {
            _http.Dispose();
        }
    }

    private async Task<JobInfo> SendForJobAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(method, path, content, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.JobInfo, cancellationToken).ConfigureAwait(false);
    }

    private async Task<QueueInfo> SendForQueueAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Post, path, content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.QueueInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends one request and returns a success answer; every failure leaves here as <see cref="ConveyorException"/>.</summary>
    private async Task<HttpResponseMessage> SendAsync(
        HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(BaseAddress, path)) { Content = content };
        request.Headers.UserAgent.Add(UserAgent);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException exception)
        {
            throw ErrorFactory.Unreachable(BaseAddress, exception);
        }
        catch (TaskCanceledException exception) when (!cancellationToken.IsCancellationRequested)
        {
            // HttpClient reports its own Timeout as a cancellation the caller never asked for.
            throw ErrorFactory.TimedOut(BaseAddress, exception);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            throw await ErrorFactory.FromResponseAsync(response, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                return await JsonSerializer.DeserializeAsync(stream, typeInfo, cancellationToken).ConfigureAwait(false)
                    ?? throw new JsonException("the body was JSON null");
            }
        }
        catch (JsonException exception)
        {
            throw ErrorFactory.UnreadableAnswer(response.StatusCode, exception);
        }
        catch (HttpRequestException exception)
        {
            // The connection broke while the body was still arriving.
            throw ErrorFactory.Unreachable(BaseAddress, exception);
        }
    }

    private static ByteArrayContent Json<T>(T value, JsonTypeInfo<T> typeInfo)
    {
        // Serialized up front so the request carries a Content-Length instead of chunked encoding.
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(value, typeInfo));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        return content;
    }

    private static string Segment(string queue)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        return Uri.EscapeDataString(queue);
    }

    private static string Id(long id) => id.ToString(CultureInfo.InvariantCulture);
}
