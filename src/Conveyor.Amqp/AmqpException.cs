namespace Conveyor.Amqp;

/// <summary>What went wrong with a RabbitMQ operation; <see cref="AmqpException.IsTransient"/> says whether a retry can help.</summary>
public enum AmqpFailure
{
    /// <summary>No connection to the broker right now (it restarted, or the network dropped). Retrying later can help.</summary>
    ConnectionDown,
    /// <summary>The broker refused the message (a nack): it was not stored. Retrying can help.</summary>
    NotConfirmed,
    /// <summary>The broker could not route the message to any queue (a <c>basic.return</c>).</summary>
    Unroutable,
    /// <summary>No reply arrived in time for an RPC call.</summary>
    Timeout,
    /// <summary>The remote handler failed and replied with an error.</summary>
    RemoteError,
}

/// <summary>The one exception type of Conveyor.Amqp. Built by <see cref="AmqpErrors"/> with a message that says what to do next.</summary>
public sealed class AmqpException : Exception
{
    internal AmqpException(AmqpFailure failure, string message, Exception? inner = null) : base(message, inner) => Failure = failure;

    public AmqpFailure Failure { get; }

    /// <summary>True when the same operation may succeed if retried later (connection down, broker nack, timeout).</summary>
    public bool IsTransient => Failure is AmqpFailure.ConnectionDown or AmqpFailure.NotConfirmed or AmqpFailure.Timeout;
}

/// <summary>Every <see cref="AmqpException"/> is made here, so the sentences stay consistent.</summary>
internal static class AmqpErrors
{
    public static AmqpException ConnectionDown(string what, Exception? inner = null) => new(
        AmqpFailure.ConnectionDown,
        $"Could not {what}: the connection to RabbitMQ is down (the broker may be restarting). It reconnects by itself; retry in a moment.",
        inner);

    public static AmqpException NotConfirmed(string exchange, string routingKey, Exception? inner = null) => new(
        AmqpFailure.NotConfirmed,
        $"RabbitMQ did not confirm the message to exchange '{Display(exchange)}' with routing key '{routingKey}' (nack): it was not stored; publish it again.",
        inner);

    public static AmqpException Unroutable(string exchange, string routingKey, Exception? inner = null) => new(
        AmqpFailure.Unroutable,
        $"RabbitMQ could not route the message to exchange '{Display(exchange)}' with routing key '{routingKey}': no queue is bound to it. " +
        "Declare the queue (or the binding) first, or check the name.",
        inner);

    public static AmqpException Timeout(string queue, string correlationId, TimeSpan timeout) => new(
        AmqpFailure.Timeout,
        $"No reply to call {correlationId} on queue '{queue}' within {timeout.TotalSeconds:0.###} s. Is a worker consuming '{queue}'? " +
        "Raise the timeout for slow handlers; the call may still run, so make handlers idempotent before retrying.");

    public static AmqpException Remote(string queue, string error) => new(AmqpFailure.RemoteError, $"The handler on queue '{queue}' failed: {error}");

    private static string Display(string exchange) => exchange.Length == 0 ? "(default)" : exchange;
}
