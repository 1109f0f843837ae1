using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Conveyor.Amqp;

/// <summary>Log messages of Conveyor.Amqp, declared once with stable event ids (3000–3099).</summary>
internal static partial class AmqpLog
{
    [LoggerMessage(3000, LogLevel.Warning, "RabbitMQ at {Uri} is unreachable (attempt {Attempt}): {Reason}. Retrying.")]
    public static partial void BrokerUnreachable(ILogger logger, string uri, int attempt, string reason);

    [LoggerMessage(3001, LogLevel.Information, "Ingesting RabbitMQ queue '{RabbitQueue}' into Conveyor queue '{Queue}'.")]
    public static partial void IngestStarted(ILogger logger, string rabbitQueue, string queue);

    [LoggerMessage(3002, LogLevel.Warning, "Rejected a message from RabbitMQ queue '{RabbitQueue}' (dead-lettered if the queue has a dead-letter exchange): {Reason}")]
    public static partial void MessageRejected(ILogger logger, string rabbitQueue, string reason);

    [LoggerMessage(3003, LogLevel.Warning, "Could not commit {Count} message(s) from '{RabbitQueue}' as jobs; retrying in {DelayMs} ms. They stay unacknowledged meanwhile.")]
    public static partial void InsertFailed(ILogger logger, Exception exception, int count, string rabbitQueue, int delayMs);

    [LoggerMessage(3004, LogLevel.Warning, "Could not acknowledge {Count} committed message(s) from '{RabbitQueue}' ({Reason}); RabbitMQ redelivers them (at-least-once: an idempotency key makes the repeat a replay).")]
    public static partial void AckFailed(ILogger logger, int count, string rabbitQueue, string reason);

    [LoggerMessage(3005, LogLevel.Warning, "The channel consuming '{RabbitQueue}' closed ({Reason}); opening a new one in {DelayMs} ms.")]
    public static partial void ChannelClosed(ILogger logger, string rabbitQueue, string reason, int delayMs);

    [LoggerMessage(3006, LogLevel.Warning, "The RabbitMQ connection was lost ({Reason}); reconnecting.")]
    public static partial void ConnectionLost(ILogger logger, string reason);

    [LoggerMessage(3007, LogLevel.Information, "Reconnected to RabbitMQ.")]
    public static partial void Reconnected(ILogger logger);

    [LoggerMessage(3008, LogLevel.Warning, "Could not publish the reply of job {JobId} to '{ReplyTo}' (correlation id {CorrelationId}): {Reason}")]
    public static partial void ReplyFailed(ILogger logger, long jobId, string replyTo, string correlationId, string reason);

    [LoggerMessage(3009, LogLevel.Warning, "Handler for queue '{Queue}' failed on message {MessageId}: {Reason}")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string queue, string messageId, string reason);

    [LoggerMessage(3010, LogLevel.Information, "Resumed waiting for {Count} RPC job(s) whose replies were not sent before the last stop.")]
    public static partial void RpcResumed(ILogger logger, int count);

    [LoggerMessage(3011, LogLevel.Error, "The ingest of '{RabbitQueue}' stopped unexpectedly; restarting it in {DelayMs} ms.")]
    public static partial void IngestCrashed(ILogger logger, Exception exception, string rabbitQueue, int delayMs);

    [LoggerMessage(3012, LogLevel.Warning, "Could not settle message {MessageId} on '{Queue}' ({Reason}); RabbitMQ redelivers it.")]
    public static partial void SettleFailed(ILogger logger, string queue, string messageId, string reason);

    [LoggerMessage(3013, LogLevel.Warning, "The RabbitMQ connection did not recover within {Seconds} s; opening a new one (unacknowledged messages are redelivered).")]
    public static partial void RecoveryStalled(ILogger logger, int seconds);
}

/// <summary>The one <see cref="Meter"/> of Conveyor.Amqp.</summary>
internal static class AmqpMetrics
{
    public static readonly Meter Meter = new("Conveyor.Amqp");
    public static readonly Counter<long> Ingested = Meter.CreateCounter<long>("conveyor.amqp.ingested", "{message}", "Messages committed as jobs and acknowledged.");
    public static readonly Counter<long> Rejected = Meter.CreateCounter<long>("conveyor.amqp.rejected", "{message}", "Messages refused (nack without requeue).");
    public static readonly Counter<long> Replies = Meter.CreateCounter<long>("conveyor.amqp.replies", "{message}", "RPC replies published and confirmed.");
    public static readonly Counter<long> Handled = Meter.CreateCounter<long>("conveyor.amqp.worker.handled", "{message}", "Messages an AmqpWorker handler finished, by outcome.");
}
