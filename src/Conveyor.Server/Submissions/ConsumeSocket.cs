using System.Net.WebSockets;
using System.Text.Json;
using Conveyor.Server.Sockets;
using Conveyor.Submissions;

namespace Conveyor.Server.Submissions;

/// <summary>
/// <c>GET /v1/consume</c>: a consumer on one WebSocket, JSON text messages both ways (docs/submissions.md). Every
/// reservation made on the connection carries its owner id; when the connection ends — closed, aborted, or silent for
/// three heartbeat intervals — they are all released at once and no attempt is counted, so another consumer gets the
/// chunks right away instead of after the lease timeout.
/// </summary>
internal static class ConsumeSocket
{
    public static Task RunAsync(
        HttpContext context, ChunkOperations chunks, ServerOptions options, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<ChunkOperations> log) =>
        MessageSocket.ServeAsync(context, lifetime,
            (socket, heartbeat, ending) => new Connection(socket, chunks, options, time, heartbeat, log, ending),
            async connection =>
            {
                var released = await chunks.ReleaseOwnerAsync(connection.Owner, CancellationToken.None);
                if (released > 0) SubmissionLog.Released(log, connection.Owner, released);
            });

    private sealed class Connection(
        WebSocket socket, ChunkOperations chunks, ServerOptions options, TimeProvider time, TimeSpan heartbeat, ILogger log, CancellationToken aborted)
        : MessageSocket(socket, options.MaxBodyBytes, time, heartbeat, log, aborted)
    {
        public string Owner { get; } = $"ws-{Guid.NewGuid():N}";

        protected override void Dispatch(ReadOnlySpan<byte> text)
        {
            ConsumeMessage? message;
            try
            {
                message = JsonSerializer.Deserialize(text, SubmissionBodyJson.Default.ConsumeMessage);
            }
            catch (JsonException e)
            {
                Reply(w => Error(w, null, 400, Http.RequestBody.Describe(e)));
                return;
            }
            if (message is null)
            {
                Reply(w => Error(w, null, 400, "A message must be a JSON object with a type."));
                return;
            }
            // Each message runs on its own: a reserve waiting for chunks does not hold up a complete sent after it.
            var id = message.Id is { } raw ? raw.GetRawText() : null;
            Handle(id, message.Type ?? "", () => HandleAsync(message, id));
        }

        private async Task HandleAsync(ConsumeMessage m, string? id)
        {
            switch (m.Type)
            {
                case "ping":
                    await SendAsync(w => Simple(w, "pong", id));
                    return;
                case "pong":
                    return;
                case "reserve":
                    if (ChunkOperations.CheckReserve(m.Queue, m.Max, m.WaitMs, m.LeaseMs, m.Strategy, m.PreferDistinct, Owner, out var request, out var wait) is { } bad)
                    {
                        await SendAsync(w => Error(w, id, 400, bad));
                        return;
                    }
                    var reserved = await chunks.ReserveAsync(request, wait, Stopping);
                    await SendAsync(w =>
                    {
                        w.WriteStartObject();
                        w.WriteString("type", "chunks");
                        Id(w, id);
                        w.WriteStartArray("chunks");
                        foreach (var chunk in reserved) SubmissionJson.Write(w, chunk, chunks.Objects.Name);
                        w.WriteEndArray();
                        w.WriteEndObject();
                    });
                    return;
                case "complete" or "fail" or "heartbeat" or "release":
                    if (ChunkOperations.CheckTarget(m.SubmissionId, m.Index, m.LeaseToken) is { } badTarget)
                    {
                        await SendAsync(w => Error(w, id, 400, badTarget));
                        return;
                    }
                    var (submissionId, index, token) = (m.SubmissionId!.Value, m.Index!.Value, m.LeaseToken!);
                    // Finishing work is not cancelled by the connection closing: a result that arrived is kept.
                    var answer = m.Type switch
                    {
                        "complete" => await chunks.CompleteAsync(submissionId, index, token, m.Result, m.ResultBase64, m.Operations, CancellationToken.None),
                        "fail" => await chunks.FailAsync(submissionId, index, token, m.Error, CancellationToken.None),
                        "heartbeat" => await chunks.HeartbeatAsync(submissionId, index, token, m.ExtendMs, CancellationToken.None),
                        _ => await chunks.ReleaseAsync(submissionId, index, token, CancellationToken.None),
                    };
                    if (answer.Status != 200)
                    {
                        await SendAsync(w => Error(w, id, answer.Status, answer.Result.Detail!));
                        return;
                    }
                    await SendAsync(w =>
                    {
                        w.WriteStartObject();
                        w.WriteString("type", "ack");
                        Id(w, id);
                        w.WriteString("outcome", answer.Outcome);
                        w.WritePropertyName("submission");
                        SubmissionJson.Write(w, answer.Result.Submission!);
                        w.WriteEndObject();
                    });
                    return;
                default:
                    await SendAsync(w => Error(w, id, 400, $"type '{Http.JobRequests.Truncate(m.Type ?? "")}' is not one of reserve, complete, fail, heartbeat, release, ping, pong."));
                    return;
            }
        }
    }
}
