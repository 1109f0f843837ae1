using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Client.Internal;

namespace Conveyor.Client;

/// <summary>
/// The producer side of the SDK and a thin client for every route of the Conveyor v1 HTTP API: typed enqueue (one or
/// many, through the batch endpoint), RPC (<see cref="EnqueueAndWaitAsync{TRequest, TResult}"/>), inspection and
/// administration. Every failure surfaces as a <see cref="ConveyorException"/> subclass; cancellation through the
/// token surfaces as <see cref="OperationCanceledException"/>.
/// </summary>
/// <remarks>Thread-safe: one instance can serve a whole application, like the <see cref="HttpClient"/> it wraps.</remarks>
public sealed partial class ConveyorClient : IDisposable
{
    private static readonly ProductInfoHeaderValue UserAgent = new("conveyor-dotnet", "1.0");

    /// <summary>The server refuses a batch (enqueue or ack) of more items than this; larger inputs are sent in chunks.</summary>
    internal const int MaxBatchItems = 10_000;

    /// <summary>The longest single <c>wait_ms</c> the server accepts on a long poll.</summary>
    internal static readonly TimeSpan MaxServerWait = TimeSpan.FromSeconds(30);

    private readonly HttpClient? _http;
    private readonly IHttpClientFactory? _factory;
    private readonly bool _ownsHttpClient;
    private readonly AuthenticationHeaderValue? _apiKey;

    /// <summary>Creates a client with its own <see cref="HttpClient"/>, disposed with this client.</summary>
    public ConveyorClient(Uri baseAddress)
        : this(new HttpClient(), baseAddress, factory: null, ownsHttpClient: true, serializerOptions: null)
    {
    }

    /// <summary>Creates a client with its own <see cref="HttpClient"/> (disposed with this client) from <paramref name="options"/>.</summary>
    public ConveyorClient(ConveyorClientOptions options)
        : this(new HttpClient(), Validated(options).BaseAddress, factory: null, ownsHttpClient: true, options.SerializerOptions)
    {
        _apiKey = Bearer(options.ApiKey);
    }

    /// <summary>
    /// Wraps an existing <see cref="HttpClient"/> (for example a typed client from IHttpClientFactory), which stays the
    /// caller's to dispose.
    /// </summary>
    /// <param name="httpClient">The client to send requests with.</param>
    /// <param name="baseAddress">The server's address; defaults to <paramref name="httpClient"/>'s BaseAddress.</param>
    public ConveyorClient(HttpClient httpClient, Uri? baseAddress = null)
        : this(httpClient ?? throw new ArgumentNullException(nameof(httpClient)), baseAddress ?? httpClient.BaseAddress, null, false, null)
    {
    }

    /// <summary>
    /// The shape <c>services.AddConveyor(…)</c> registers: every request takes a fresh <see cref="HttpClient"/> named
    /// <see cref="ConveyorClientOptions.HttpClientName"/> from <paramref name="factory"/>, so handler rotation (DNS changes)
    /// and any handlers added to that client apply. Safe to keep as a singleton.
    /// </summary>
    public ConveyorClient(IHttpClientFactory factory, ConveyorClientOptions options)
        : this(null, Validated(options).BaseAddress, factory ?? throw new ArgumentNullException(nameof(factory)), false, options.SerializerOptions)
    {
        _apiKey = Bearer(options.ApiKey);
    }

    private ConveyorClient(
        HttpClient? httpClient, Uri? baseAddress, IHttpClientFactory? factory, bool ownsHttpClient, JsonSerializerOptions? serializerOptions)
    {
        if (baseAddress is null || !baseAddress.IsAbsoluteUri)
        {
            throw new ArgumentException("The server address must be an absolute URI such as http://127.0.0.1:5080/.", nameof(baseAddress));
        }

        _http = httpClient;
        _factory = factory;
        _ownsHttpClient = ownsHttpClient;
        SerializerOptions = WithResolver(serializerOptions ?? new JsonSerializerOptions(JsonSerializerDefaults.Web));

        // A trailing slash keeps a path prefix (http://host/conveyor/) when relative routes are resolved against it.
        BaseAddress = baseAddress.AbsoluteUri.EndsWith('/') ? baseAddress : new Uri(baseAddress.AbsoluteUri + "/");
    }

    /// <summary>The server address every route is resolved against.</summary>
    public Uri BaseAddress { get; }

    /// <summary>
    /// How typed payloads and results are (de)serialized when a call is given no <see cref="JsonTypeInfo{T}"/>
    /// (web defaults, camelCase, unless configured through <see cref="ConveyorClientOptions.SerializerOptions"/>).
    /// </summary>
    public JsonSerializerOptions SerializerOptions { get; }

    /// <summary>Enqueues one job (<c>POST /v1/queues/{queue}/jobs</c>).</summary>
    public Task<EnqueueResult> EnqueueAsync(string queue, EnqueueRequest request) => EnqueueAsync(queue, request, CancellationToken.None);

    /// <summary>Enqueues one job (<c>POST /v1/queues/{queue}/jobs</c>).</summary>
    // Two overloads rather than an optional token: with one, a call with an EnqueueRequest alone would be ambiguous
    // against EnqueueAsync<T>(queue, T payload, …).
    public async Task<EnqueueResult> EnqueueAsync(string queue, EnqueueRequest request, CancellationToken cancellationToken)
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
    /// Enqueues one job whose payload is <paramref name="payload"/> serialized as JSON, with <paramref name="options"/>
    /// (kind, priority, delay, attempts, keys, tags). Pass <paramref name="typeInfo"/> from a source-generated
    /// <c>JsonSerializerContext</c> to avoid reflection; otherwise <see cref="SerializerOptions"/> is used.
    /// </summary>
    public Task<EnqueueResult> EnqueueAsync<T>(
        string queue, T payload, JobOptions? options = null, JsonTypeInfo<T>? typeInfo = null, CancellationToken cancellationToken = default)
    {
        var request = (options ?? DefaultJobOptions).ToRequest(JsonSerializer.SerializeToElement(payload, TypeInfo(typeInfo)));
        return EnqueueAsync(queue, request, cancellationToken);
    }

    /// <summary>
    /// Enqueues many jobs with the same <paramref name="options"/> through the batch endpoint (one request per
    /// 10,000 jobs). Results are in input order. <see cref="JobOptions.IdempotencyKey"/> must be null here, as one key
    /// would make every job after the first a replay; give per-job keys through the <see cref="EnqueueRequest"/> overload.
    /// </summary>
    public Task<BatchEnqueueResult> EnqueueManyAsync<T>(
        string queue,
        IEnumerable<T> payloads,
        JobOptions? options = null,
        JsonTypeInfo<T>? typeInfo = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payloads);
        options ??= DefaultJobOptions;
        if (options.IdempotencyKey is not null)
        {
            throw new ArgumentException(
                "JobOptions.IdempotencyKey would be shared by every job of the batch; give each job its own key with "
                + "EnqueueManyAsync(queue, IEnumerable<EnqueueRequest>) instead.", nameof(options));
        }

        var info = TypeInfo(typeInfo);
        var shared = options.ToRequest(payload: null);
        return EnqueueManyAsync(queue, payloads.Select(p => shared with { Payload = JsonSerializer.SerializeToElement(p, info) }), cancellationToken);
    }

    /// <summary>
    /// Enqueues many jobs, each with its own options, through the batch endpoint: one request per 10,000 jobs (the
    /// server's batch limit), results in input order. Each request is atomic on its own; a failure part-way through a
    /// very large input leaves the earlier chunks enqueued.
    /// </summary>
    public Task<BatchEnqueueResult> EnqueueManyAsync(string queue, IEnumerable<EnqueueRequest> requests) =>
        EnqueueManyAsync(queue, requests, CancellationToken.None);

    /// <inheritdoc cref="EnqueueManyAsync(string, IEnumerable{EnqueueRequest})"/>
    public async Task<BatchEnqueueResult> EnqueueManyAsync(
        string queue, IEnumerable<EnqueueRequest> requests, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var items = new List<BatchEnqueueItem>();
        foreach (var chunk in requests.Chunk(MaxBatchItems))
        {
            var answer = await EnqueueBatchAsync(queue, chunk, cancellationToken).ConfigureAwait(false);
            items.AddRange(answer.Jobs);
        }

        return new BatchEnqueueResult { Count = items.Count, Jobs = items };
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
            cancellationToken,
            CallContext.Lease(id));

    /// <summary>Completes a leased job (<c>POST /v1/jobs/{id}/complete</c>). A stale token is refused with 409.</summary>
    public Task<JobInfo> CompleteAsync(
        long id, string leaseToken, JsonElement? result = null, CancellationToken cancellationToken = default) =>
        SendForJobAsync(
            HttpMethod.Post,
            $"v1/jobs/{Id(id)}/complete",
            Json(new CompleteBody(leaseToken, result), ClientJsonContext.Default.CompleteBody),
            cancellationToken,
            CallContext.Lease(id));

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
            cancellationToken,
            CallContext.Lease(id));

    /// <summary>
    /// Completes, fails and releases many jobs in one call (<c>POST /v1/jobs/ack</c>). Per-item outcomes (200, 404, 409)
    /// are returned rather than thrown: completes first, then fails, then releases, each in request order.
    /// </summary>
    public async Task<IReadOnlyList<AckItemResult>> AckAsync(AckRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var response = await SendAsync(
            HttpMethod.Post, "v1/jobs/ack", Json(request, ClientJsonContext.Default.AckRequest), cancellationToken).ConfigureAwait(false);
        var answer = await ReadAsync(response, ClientJsonContext.Default.AckResponse, cancellationToken).ConfigureAwait(false);
        return answer.Results;
    }

    /// <summary>
    /// Hands a leased job back untouched (<c>POST /v1/jobs/{id}/release</c>): it is available again at once and the
    /// attempt is not counted. Workers do this for jobs they leased but will not start (shutting down).
    /// </summary>
    public Task<JobInfo> ReleaseAsync(long id, string leaseToken, CancellationToken cancellationToken = default) =>
        SendForJobAsync(
            HttpMethod.Post,
            $"v1/jobs/{Id(id)}/release",
            Json(new ReleaseBody(leaseToken), ClientJsonContext.Default.ReleaseBody),
            cancellationToken,
            CallContext.Lease(id));

    /// <summary>
    /// One long poll for a job's outcome (<c>GET /v1/jobs/{id}/result?wait_ms=</c>): waits up to <paramref name="wait"/>
    /// (at most 30 s) and returns the job with <c>Finished</c> true once it is completed, dead or cancelled.
    /// </summary>
    public async Task<(JobInfo Job, bool Finished)> GetResultAsync(long id, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        var waitMs = (long)Math.Clamp(wait.TotalMilliseconds, 0, MaxServerWait.TotalMilliseconds);
        using var response = await SendAsync(
            HttpMethod.Get, $"v1/jobs/{Id(id)}/result?wait_ms={Id(waitMs)}", content: null, cancellationToken, CallContext.Job(id))
            .ConfigureAwait(false);
        var job = await ReadAsync(response, ClientJsonContext.Default.JobInfo, cancellationToken).ConfigureAwait(false);

        // 200 once finished, 202 while not yet.
        return (job, response.StatusCode == HttpStatusCode.OK);
    }

    /// <summary>
    /// Waits until the job finishes or <paramref name="timeout"/> passes, long-polling the server (each poll at most
    /// 30 s; a transient failure in between is retried until the deadline). Returns the completed job; throws
    /// <see cref="JobFailedException"/> when it ended dead or cancelled and <see cref="JobWaitTimeoutException"/> when
    /// time ran out (the job is left as it is).
    /// </summary>
    public Task<JobInfo> WaitForResultAsync(long id, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitForResultCoreAsync(id, timeout, timeout, cancellationToken);

    private async Task<JobInfo> WaitForResultCoreAsync(long id, TimeSpan timeout, TimeSpan reportedTimeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        JobInfo? last = null;
        var pause = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            var remaining = timeout - Stopwatch.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                throw ErrorFactory.WaitTimedOut(id, reportedTimeout, last);
            }

            try
            {
                var (job, finished) = await GetResultAsync(id, remaining, cancellationToken).ConfigureAwait(false);
                last = job;
                if (finished)
                {
                    return job.State == "completed" ? job : throw ErrorFactory.JobFailed(job);
                }

                pause = TimeSpan.FromMilliseconds(50);
            }
            catch (ConveyorException exception) when (exception.IsTransient)
            {
                // The server restarted or is overloaded: the job is durable, so keep waiting while there is time.
                var left = timeout - Stopwatch.GetElapsedTime(started);
                if (left <= TimeSpan.Zero)
                {
                    throw ErrorFactory.WaitTimedOut(id, reportedTimeout, last);
                }

                await Task.Delay(pause < left ? pause : left, cancellationToken).ConfigureAwait(false);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>
    /// <see cref="WaitForResultAsync(long, TimeSpan, CancellationToken)"/>, then reads the job's result as
    /// <typeparamref name="TResult"/> (a JSON <c>null</c> or absent result gives <c>default</c>).
    /// </summary>
    public async Task<TResult?> WaitForResultAsync<TResult>(
        long id, TimeSpan timeout, JsonTypeInfo<TResult>? resultTypeInfo = null, CancellationToken cancellationToken = default)
    {
        var job = await WaitForResultAsync(id, timeout, cancellationToken).ConfigureAwait(false);
        return ReadResult(job, TypeInfo(resultTypeInfo));
    }

    /// <summary>
    /// RPC over the queue: enqueues <paramref name="request"/> and waits up to <paramref name="timeout"/> for a worker's
    /// handler to return, giving back its return value. Throws <see cref="JobFailedException"/> when the job ended dead
    /// (its handler failed on every attempt or failed permanently) or cancelled, and <see cref="JobWaitTimeoutException"/>
    /// when no result came in time; the job is then left as it is (cancel it if the answer is no longer wanted).
    /// Tip: RPC callers usually want <see cref="JobOptions.MaxAttempts"/> small, so a failing handler answers quickly.
    /// </summary>
    public async Task<TResult?> EnqueueAndWaitAsync<TRequest, TResult>(
        string queue,
        TRequest request,
        TimeSpan timeout,
        JobOptions? options = null,
        JsonTypeInfo<TRequest>? requestTypeInfo = null,
        JsonTypeInfo<TResult>? resultTypeInfo = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        var started = Stopwatch.GetTimestamp();
        var (job, _) = await EnqueueAsync(queue, request, options, requestTypeInfo, cancellationToken).ConfigureAwait(false);
        var remaining = timeout - Stopwatch.GetElapsedTime(started);
        var finished = await WaitForResultCoreAsync(job.Id, remaining > TimeSpan.Zero ? remaining : TimeSpan.FromTicks(1), timeout, cancellationToken)
            .ConfigureAwait(false);
        return ReadResult(finished, TypeInfo(resultTypeInfo));
    }

    /// <summary>Cancels a job that has not finished (<c>POST /v1/jobs/{id}/cancel</c>); 409 when it already has.</summary>
    public Task<JobInfo> CancelAsync(long id, CancellationToken cancellationToken = default) =>
        SendForJobAsync(HttpMethod.Post, $"v1/jobs/{Id(id)}/cancel", content: null, cancellationToken, CallContext.Job(id));

    /// <summary>Makes a dead or cancelled job available again with its attempts reset (<c>POST /v1/jobs/{id}/retry</c>).</summary>
    public Task<JobInfo> RetryAsync(long id, CancellationToken cancellationToken = default) =>
        SendForJobAsync(HttpMethod.Post, $"v1/jobs/{Id(id)}/retry", content: null, cancellationToken, CallContext.Job(id));

    /// <summary>Reads one job (<c>GET /v1/jobs/{id}</c>); an unknown id throws with status 404.</summary>
    public Task<JobInfo> GetJobAsync(long id, CancellationToken cancellationToken = default) =>
        SendForJobAsync(HttpMethod.Get, $"v1/jobs/{Id(id)}", content: null, cancellationToken, CallContext.Job(id));

    /// <summary>Reads a job's history, oldest first (<c>GET /v1/jobs/{id}/events</c>).</summary>
    public async Task<IReadOnlyList<JobEvent>> GetEventsAsync(long id, CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(HttpMethod.Get, $"v1/jobs/{Id(id)}/events", content: null, cancellationToken, CallContext.Job(id))
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
            _http?.Dispose();
        }
    }

    private static readonly JobOptions DefaultJobOptions = new();

    private static AuthenticationHeaderValue? Bearer(string? apiKey) =>
        string.IsNullOrEmpty(apiKey) ? null : new AuthenticationHeaderValue("Bearer", apiKey);

    private static ConveyorClientOptions Validated(ConveyorClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options;
    }

    /// <summary>Options without a resolver fall back to reflection, as JsonSerializer itself would, so GetTypeInfo works.</summary>
    private static JsonSerializerOptions WithResolver(JsonSerializerOptions options) =>
        options.TypeInfoResolver is not null ? options : new JsonSerializerOptions(options) { TypeInfoResolver = new DefaultJsonTypeInfoResolver() };

    private JsonTypeInfo<T> TypeInfo<T>(JsonTypeInfo<T>? given) => given ?? (JsonTypeInfo<T>)SerializerOptions.GetTypeInfo(typeof(T));

    private static TResult? ReadResult<TResult>(JobInfo job, JsonTypeInfo<TResult> typeInfo)
    {
        if (job.Result is not { ValueKind: not JsonValueKind.Null } result)
        {
            return default;
        }

        try
        {
            return result.Deserialize(typeInfo);
        }
        catch (JsonException exception)
        {
            throw new ConveyorException(
                $"job {Id(job.Id)} completed, but its result could not be read as {typeof(TResult).Name} ({exception.Message}); "
                + "check that the worker's handler returns that type", innerException: exception);
        }
    }

    private async Task<JobInfo> SendForJobAsync(
        HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken, CallContext call = default)
    {
        using var response = await SendAsync(method, path, content, cancellationToken, call).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.JobInfo, cancellationToken).ConfigureAwait(false);
    }

    private async Task<QueueInfo> SendForQueueAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Post, path, content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.QueueInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Creates or replaces a cron schedule (<c>PUT /v1/schedules/{name}</c>).</summary>
    public async Task<ScheduleInfo> PutScheduleAsync(string name, ScheduleRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var response = await SendAsync(HttpMethod.Put, $"v1/schedules/{Segment(name)}", Json(request, ClientJsonContext.Default.ScheduleRequest),
            cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.ScheduleInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every cron schedule with its next run (<c>GET /v1/schedules</c>).</summary>
    public async Task<IReadOnlyList<ScheduleInfo>> ListSchedulesAsync(CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(HttpMethod.Get, "v1/schedules", content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.IReadOnlyListScheduleInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes a cron schedule (<c>DELETE /v1/schedules/{name}</c>); its already enqueued jobs stay.</summary>
    public async Task DeleteScheduleAsync(string name, CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(HttpMethod.Delete, $"v1/schedules/{Segment(name)}", content: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends one request and returns a success answer; every failure leaves here as <see cref="ConveyorException"/>.</summary>
    private async Task<HttpResponseMessage> SendAsync(
        HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken, CallContext call = default)
    {
        using var request = new HttpRequestMessage(method, new Uri(BaseAddress, path)) { Content = content };
        request.Headers.UserAgent.Add(UserAgent);
        request.Headers.Authorization = _apiKey;
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

        HttpResponseMessage response;
        try
        {
            // From the factory, a client per request is the intended use: cheap, and it picks up rotated handlers.
            var http = _http ?? _factory!.CreateClient(ConveyorClientOptions.HttpClientName);
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
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
            throw await ErrorFactory.FromResponseAsync(response, call, cancellationToken).ConfigureAwait(false);
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
