using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Conveyor.Server.Http;
using Conveyor.Server.Security;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Conveyor.Server.Sockets;

/// <summary>
/// <c>GET /v1/jobs/socket</c>: the producer and worker operations (enqueue, enqueue_batch, lease, heartbeat, ack) as
/// JSON messages on one WebSocket, many in flight at once (docs/api.md). Each answers exactly as its HTTP route does —
/// the same code runs — but a message costs both ends far less than an HTTP request. Jobs leased on a connection and
/// not acked on it are released when it ends, without counting an attempt, like a broker's unacked deliveries.
/// </summary>
internal static class JobSocket
{
    public const string Path = "/v1/jobs/socket";

    public static void Map(WebApplication app)
    {
        var services = JobServices.From(app.Services);
        var log = app.Services.GetRequiredService<ILogger<JobSocketConnection>>();
        MessageSocket.UseWebSocketsAt(app, Path);
        // Any known key may connect; each message is then checked against what the key's role may do.
        app.MapGet(Path, (HttpContext context) => RunAsync(context, services, log)).Requires(Access.Read).ExcludeFromDescription();
    }

    private static Task RunAsync(HttpContext context, JobServices services, ILogger<JobSocketConnection> log) =>
        MessageSocket.ServeAsync(context, services.Lifetime,
            (socket, heartbeat, ending) => new JobSocketConnection(socket, AccessControlMiddleware.RoleOf(context), services, log, heartbeat, ending),
            connection => connection.ReleaseHeldAsync());
}

/// <summary>One client's connection to <see cref="JobSocket"/>.</summary>
internal sealed class JobSocketConnection(
    WebSocket socket, ApiKeyRole role, JobServices services, ILogger<JobSocketConnection> log, TimeSpan heartbeat, CancellationToken aborted)
    : MessageSocket(socket, services.Options.MaxBodyBytes, services.Time, heartbeat, log, aborted)
{
    private const string Types = "enqueue, enqueue_batch, lease, heartbeat, ack, ping, pong";

    // Leases handed out here and not yet acked here: released when the connection ends.
    private readonly ConcurrentDictionary<long, string> _held = new();

    /// <summary>One parsed message; <see cref="Body"/> is copied out of the receive buffer.</summary>
    private sealed record Message(string Type, string? Id, string? Queue, long? JobId, byte[] Body, string? TraceParent, string? TraceState);

    protected override void Dispatch(ReadOnlySpan<byte> text)
    {
        if (!TryParse(text, out var message, out var id, out var invalid))
        {
            Reply(w => Error(w, id, 400, invalid!));
            return;
        }
        switch (message!.Type)
        {
            case "ping":
                Reply(w => Simple(w, "pong", message.Id));
                return;
            case "pong":
                Ignore();
                return;
        }
        var (access, known) = message.Type switch
        {
            "enqueue" or "enqueue_batch" => (Access.Enqueue, true),
            "lease" or "heartbeat" or "ack" => (Access.Work, true),
            _ => (Access.Read, false),
        };
        if (!known)
        {
            Reply(w => Error(w, message.Id, 400, $"type '{JobRequests.Truncate(message.Type)}' is not one of {Types}."));
            return;
        }
        if (!role.Allows(access))
        {
            Reply(w => Error(w, message.Id, 403, AccessControlMiddleware.Forbidden(role, access)));
            return;
        }
        if (message.Type is not "ack" && message.Type is not "heartbeat" && message.Queue is null)
        {
            Reply(w => Error(w, message.Id, 400, $"A {message.Type} message needs a queue."));
            return;
        }
        if (message.Type is "enqueue" && message.Body.Length > services.Options.MaxJobBytes)
        {
            Reply(w => Error(w, message.Id, 413, $"The job is {message.Body.Length:N0} bytes, over the limit of {services.Options.MaxJobBytes:N0} bytes per job (--max-job-bytes)."));
            return;
        }
        if (message.Type is "heartbeat" && message.JobId is null)
        {
            Reply(w => Error(w, message.Id, 400, "A heartbeat message needs a job_id."));
            return;
        }
        Handle(message.Id, message.Type, () => RunAsync(message));
    }

    private async Task RunAsync(Message m)
    {
        // A message is a call of its own: its spans and its jobs join the trace the message names, not the connection's
        // upgrade request (the Activity this flow inherited, when something records spans).
        Activity.Current = null;
        var call = new JobCall(m.TraceParent, m.TraceState, Stopping);
        var answer = m.Type switch
        {
            "enqueue" => await JobOperations.EnqueueOneAsync(m.Queue!, m.Body, call, services),
            "enqueue_batch" => await JobOperations.EnqueueBatchAsync(m.Queue!, m.Body, ndjson: false, call, services),
            "lease" => await JobOperations.LeaseAsync(m.Queue!, m.Body, call, Stopping, services),
            "heartbeat" => await JobOperations.HeartbeatAsync(m.JobId!.Value, m.Body, call, services),
            _ => await JobOperations.AckAsync(m.Body, call, services),
        };
        foreach (var job in answer.Leased ?? []) _held[job.Id] = job.Lease!.Token;
        foreach (var outcome in answer.Acked ?? [])
        {
            if (outcome.IsOk) _held.TryRemove(outcome.Id, out _);
        }
        await SendAsync(w => Write(w, m.Id, answer.Result));
    }

    /// <summary>Hands back what this connection leased and did not ack: another worker gets it now, not at lease expiry.</summary>
    public async Task ReleaseHeldAsync()
    {
        if (_held.IsEmpty) return;
        var releases = _held.Select(h => AckRequest.Release(h.Key, h.Value)).ToList();
        var released = 0;
        foreach (var chunk in releases.Chunk(JobLimits.MaxBatchJobs))
        {
            var outcomes = await services.Store.JobAckManyAsync(chunk, CancellationToken.None);
            released += outcomes.Count(o => o.IsOk);
        }
        if (released > 0) JobSocketLog.Released(log, released);
    }

    /// <summary>An operation's answer as a message: its status and the body its HTTP route would send.</summary>
    private static void Write(Utf8JsonWriter w, string? id, IResult result)
    {
        switch (result)
        {
            case JsonWriterResult json:
                w.WriteStartObject();
                w.WriteString("type", "result");
                Id(w, id);
                w.WriteNumber("status", json.StatusCode);
                w.WritePropertyName("body");
                json.WriteBody(w);
                w.WriteEndObject();
                return;
            case ProblemHttpResult problem:
                Error(w, id, problem.StatusCode, problem.ProblemDetails.Detail ?? Problems.Title(problem.StatusCode));
                return;
            case IStatusCodeHttpResult { StatusCode: { } status }:
                w.WriteStartObject();
                w.WriteString("type", "result");
                Id(w, id);
                w.WriteNumber("status", status);
                w.WriteNull("body");
                w.WriteEndObject();
                return;
            default:
                throw new InvalidOperationException($"No message form for {result.GetType().Name}.");
        }
    }

    /// <summary>
    /// Reads a message by hand: its body is kept as raw bytes for the operation to parse, exactly as an HTTP body is.
    /// </summary>
    private static bool TryParse(ReadOnlySpan<byte> text, out Message? message, out string? id, out string? invalid)
    {
        (message, id, invalid) = (null, null, null);
        string? type = null, queue = null, traceParent = null, traceState = null;
        long? jobId = null;
        byte[] body = [];
        var reader = new Utf8JsonReader(text);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                invalid = "A message must be a JSON object with a type.";
                return false;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                // Compared as UTF-8, not read as strings: this runs for every message.
                var field = reader.ValueSpan;
                reader.Read();
                // A wrong field is remembered and the message read on, so that the error answer carries its id.
                if (field.SequenceEqual("id"u8)) id = Encoding.UTF8.GetString(Raw(ref reader, text));
                else if (field.SequenceEqual("body"u8)) body = Raw(ref reader, text).ToArray();
                else if (field.SequenceEqual("job_id"u8))
                {
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var number)) jobId = number;
                    else if (reader.TokenType != JsonTokenType.Null) invalid ??= "job_id must be a number.";
                    reader.Skip();
                }
                else if (field.SequenceEqual("type"u8)) type = StringOrNull(ref reader, "type", ref invalid);
                else if (field.SequenceEqual("queue"u8)) queue = StringOrNull(ref reader, "queue", ref invalid);
                else if (field.SequenceEqual("traceparent"u8)) traceParent = StringOrNull(ref reader, "traceparent", ref invalid);
                else if (field.SequenceEqual("tracestate"u8)) traceState = StringOrNull(ref reader, "tracestate", ref invalid);
                else
                {
                    invalid ??= $"'{JobRequests.Truncate(Encoding.UTF8.GetString(field))}' is not a field of a message: type, id, queue, job_id, body, traceparent, tracestate.";
                    reader.Skip();
                }
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                invalid = "A message must be exactly one JSON object.";
                return false;
            }
        }
        catch (JsonException e)
        {
            invalid = $"The message is not valid JSON for this socket: {e.Message}";
            return false;
        }
        if (invalid is not null) return false;
        if (type is null)
        {
            invalid = $"A message needs a type: one of {Types}.";
            return false;
        }
        message = new Message(type, id, queue, jobId, body, traceParent, traceState);
        return true;
    }

    /// <summary>The value under the reader as raw JSON (an id to echo, a body to parse).</summary>
    private static ReadOnlySpan<byte> Raw(ref Utf8JsonReader reader, ReadOnlySpan<byte> text)
    {
        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        return text[start..(int)reader.BytesConsumed];
    }

    private static string? StringOrNull(ref Utf8JsonReader reader, string name, ref string? invalid)
    {
        if (reader.TokenType == JsonTokenType.String) return reader.GetString();
        if (reader.TokenType != JsonTokenType.Null) invalid ??= $"{name} must be a string.";
        reader.Skip();
        return null;
    }
}

internal static partial class JobSocketLog
{
    [LoggerMessage(EventId = 6102, Level = LogLevel.Information, Message = "A jobs socket closed; released {Count} jobs it had leased and not acked.")]
    public static partial void Released(ILogger logger, int count);
}
