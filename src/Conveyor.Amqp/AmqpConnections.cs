using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Conveyor.Amqp;

/// <summary>
/// Opens connections that recover by themselves. RabbitMQ.Client's automatic recovery re-opens the connection, its
/// channels, the queues and bindings they declared and their consumers once the broker is back; it does not cover the
/// first connection, so <see cref="ConnectAsync"/> retries that itself until it succeeds or is cancelled.
/// </summary>
internal static class AmqpConnections
{
    public static ConnectionFactory Factory(Uri uri, string clientName, TimeSpan reconnectInterval) => new()
    {
        Uri = uri,
        ClientProvidedName = clientName,
        AutomaticRecoveryEnabled = true,
        TopologyRecoveryEnabled = true,
        NetworkRecoveryInterval = reconnectInterval,

        // Notices a silently dead peer within about 2 × this.
        RequestedHeartbeat = TimeSpan.FromSeconds(10),
    };

    public static async Task<IConnection> ConnectAsync(ConnectionFactory factory, ILogger logger, TimeSpan retryInterval, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await factory.CreateConnectionAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is BrokerUnreachableException or IOException or OperationInterruptedException && !cancellationToken.IsCancellationRequested)
            {
                // Logged at the first failure and then every 30th, so a long outage does not flood the log.
                if (attempt == 1 || attempt % 30 == 0) AmqpLog.BrokerUnreachable(logger, Redacted(factory.Uri), attempt, e.GetBaseException().Message);
                await Task.Delay(retryInterval, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Connects once, failing fast (clients and workers: the caller decides whether to retry).</summary>
    public static async Task<IConnection> ConnectOnceAsync(ConnectionFactory factory, CancellationToken cancellationToken)
    {
        try
        {
            return await factory.CreateConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (BrokerUnreachableException e)
        {
            throw AmqpErrors.ConnectionDown($"connect to {Redacted(factory.Uri)}", e);
        }
    }

    /// <summary>The URI without its password, for logs and messages.</summary>
    public static string Redacted(Uri uri) =>
        string.IsNullOrEmpty(uri.UserInfo) ? uri.ToString() : uri.ToString().Replace(uri.UserInfo + "@", uri.UserInfo.Split(':')[0] + ":***@", StringComparison.Ordinal);

    /// <summary>True for the exceptions a channel operation throws while the connection is down or the channel closed.</summary>
    public static bool IsConnectionLoss(Exception e) => e is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException;
}
