using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Postgres;

/// <summary>A job to enqueue; the fields and limits of the HTTP enqueue request.</summary>
public sealed record ConveyorJob
{
    /// <summary>What the job is, e.g. <c>email.send</c>.</summary>
    public string Kind { get; init; } = "default";

    /// <summary>The payload as JSON text (any JSON value), or null.</summary>
    public string? PayloadJson { get; init; }

    /// <summary>Higher runs first; −1000 to 1000.</summary>
    public int Priority { get; init; }

    /// <summary>When the job may run; null means now (the application's clock).</summary>
    public DateTimeOffset? RunAt { get; init; }

    /// <summary>Attempts before the job is dead; 1 to 1000.</summary>
    public int MaxAttempts { get; init; } = 25;

    /// <summary>A key seen again in the same queue returns the existing job instead of a second one.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Jobs sharing a key in a queue run one at a time, in id order.</summary>
    public string? PartitionKey { get; init; }

    public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>A W3C traceparent carried to the worker.</summary>
    public string? TraceParent { get; init; }

    /// <summary>
    /// Push delivery (the outbox): a JSON array of destinations, as in the HTTP API's <c>destinations</c>
    /// (docs/delivery.md). The server's dispatcher delivers the payload there once the transaction commits; the queue
    /// becomes a push queue in the same transaction.
    /// </summary>
    public string? DestinationsJson { get; init; }
}

/// <summary>The outcome of one enqueue: the job's id, and whether it already existed (idempotency key seen before).</summary>
public readonly record struct EnqueuedJob(long Id, bool Replayed);

[JsonSerializable(typeof(IReadOnlyList<string>))]
internal sealed partial class TagsJson : JsonSerializerContext;

/// <summary>The checks the HTTP API makes, so a job that commits here is one a server would have accepted.</summary>
internal static class Validate
{
    public static void Name(string? name, string what)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 128 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':'))
            throw new ArgumentException($"The {what} name must be 1-128 letters, digits or . _ - :, not '{name}'.", what);
    }

    public static void Schema(string? schema)
    {
        if (string.IsNullOrEmpty(schema) || schema.Length > 48 || !(char.IsAsciiLetterLower(schema[0]) || schema[0] == '_')
            || !schema.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
            throw new ArgumentException($"The schema must be the one the Conveyor server uses (lower-case letters, digits, _), not '{schema}'.", nameof(schema));
    }

    public static void Job(ConveyorJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (string.IsNullOrEmpty(job.Kind) || job.Kind.Length > 128) throw new ArgumentException("A job's kind must be 1-128 characters.", nameof(job));
        if (job.Priority is < -1000 or > 1000) throw new ArgumentException($"Priority must be between -1000 and 1000, not {job.Priority}.", nameof(job));
        if (job.MaxAttempts is < 1 or > 1000) throw new ArgumentException($"MaxAttempts must be between 1 and 1000, not {job.MaxAttempts}.", nameof(job));
        if (job.IdempotencyKey is { Length: 0 or > 256 }) throw new ArgumentException("An idempotency key must be 1-256 characters.", nameof(job));
        if (job.PartitionKey is { Length: 0 or > 256 }) throw new ArgumentException("A partition key must be 1-256 characters.", nameof(job));
        if (job.Tags is { Count: > 32 }) throw new ArgumentException("A job has at most 32 tags.", nameof(job));
        if (job.DestinationsJson is { } destinations) Destinations(destinations);
        if (job.PayloadJson is { } payload)
        {
            try
            {
                using var _ = JsonDocument.Parse(payload);
            }
            catch (JsonException e)
            {
                throw new ArgumentException($"PayloadJson is not valid JSON: {e.Message}", nameof(job), e);
            }
        }
    }

    /// <summary>The shape only; the server checks each destination fully when it delivers (a bad one makes the job dead with a sentence).</summary>
    private static void Destinations(string json)
    {
        const string Shape = "DestinationsJson must be a JSON array of 1-16 destination objects, each with \"type\": \"http\" or \"amqp\"";
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() is 0 or > 16) throw new ArgumentException(Shape + ".", "job");
            foreach (var item in root.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("type", out var type) || type.GetString() is not ("http" or "amqp"))
                    throw new ArgumentException($"{Shape}, not {item.GetRawText()}.", "job");
            }
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"DestinationsJson is not valid JSON: {e.Message}", "job", e);
        }
    }
}

/// <summary>The SQL of the server's store for inserts, on its schema (kept in step with Conveyor.Storage.Postgres).</summary>
internal static class Statements
{
    public static string For(string schema, string text) => text.Replace("{s}", "\"" + schema + "\"", StringComparison.Ordinal);

    public const string LockPartitions =
        "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtext(@schema), hashtext(k)) FROM unnest(@keys::text[]) AS k ORDER BY hashtext(k), k) AS l";

    public const string InsertMany = """
        WITH input AS (
            SELECT * FROM unnest(@kind::text[], @state::smallint[], @priority::int[], @run_at::timestamptz[],
                                 @max_attempts::int[], @payload::text[], @idempotency_key::text[], @partition_key::text[],
                                 @tags::text[], @trace_parent::text[], @destinations::text[])
                     WITH ORDINALITY AS t(kind, state, priority, run_at, max_attempts, payload, idempotency_key, partition_key,
                                          tags, trace_parent, destinations, ord)
        ), numbered AS (
            SELECT nextval('{s}.jobs_id_seq') AS id, input.* FROM input ORDER BY ord
        ), inserted AS (
            INSERT INTO {s}.jobs (id, queue, kind, state, priority, run_at, max_attempts, payload, idempotency_key, partition_key,
                                  tags, trace_parent, created_at, updated_at, destinations)
            SELECT id, @queue, kind, state, priority, run_at, max_attempts, payload::json, idempotency_key, partition_key,
                   CASE WHEN tags IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text(tags::json)) END, trace_parent, @now, @now,
                   destinations::json
            FROM numbered ORDER BY id
            ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id
        )
        SELECT n.ord, n.id, i.id IS NOT NULL FROM numbered n LEFT JOIN inserted i ON i.id = n.id ORDER BY n.ord
        """;

    /// <summary>Jobs with destinations make their queue a push queue, in the same transaction.</summary>
    public const string MarkPush = """
        INSERT INTO {s}.queues (name, created_at, push) VALUES (@queue, @now, true) ON CONFLICT (name) DO UPDATE SET push = true
        """;

    public const string FindIdempotent =
        "SELECT idempotency_key, id FROM {s}.jobs WHERE queue = @queue AND idempotency_key = ANY(@keys::text[])";
}
