using System.Text.Json;
using Conveyor.Amqp;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using WorkToDo.Core;

namespace WorkToDo.TaskProducer;

/// <summary>
/// Every <see cref="ProducerSettings.Every"/>, publishes <c>WorkDemand {add_up_to: 1–99, done: false}</c> to the RabbitMQ
/// queue the Conveyor server ingests. Each message carries:
/// <list type="bullet">
/// <item><c>type = work.demand</c>: becomes the job's kind, which picks the consumer's handler;</item>
/// <item>a fresh <c>message_id</c>: becomes the job's idempotency key, so a redelivery (or our own retry of an unconfirmed
/// publish) is a replay of the same job, and the consumer derives the work code from it.</item>
/// </list>
/// A publish counts only once RabbitMQ confirmed it; an unconfirmed one is retried with the same message id.
/// </summary>
public sealed class DemandProducer(ProducerSettings settings, TextWriter output)
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>Runs until <see cref="ProducerSettings.Count"/> demands are confirmed or <paramref name="cancellationToken"/> fires; returns how many were.</summary>
    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory
        {
            Uri = settings.Amqp,
            ClientProvidedName = "worktodo-task-producer",
            AutomaticRecoveryEnabled = true,
            NetworkRecoveryInterval = RetryDelay,
        };
        await using var connection = await ConnectAsync(factory, cancellationToken);
        await using (var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken))
        {
            // Durable, no arguments: the same declaration the ingest makes, so whichever side starts first creates it.
            await channel.QueueDeclareAsync(settings.RabbitQueue, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken);
        }
        await using var publisher = new AmqpPublisher(connection);

        var sent = 0;
        using var timer = new PeriodicTimer(settings.Every);
        try
        {
            do
            {
                var demand = new WorkDemand(Arithmetic.RandomAddUpTo(), Done: false);
                var messageId = Guid.NewGuid().ToString("N");
                await PublishConfirmedAsync(publisher, demand, messageId, cancellationToken);
                sent++;
                await output.WriteLineAsync($"published demand {messageId}: add_up_to={demand.AddUpTo}");
                if (settings.Count > 0 && sent >= settings.Count) break;
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        return sent;
    }

    private async Task PublishConfirmedAsync(AmqpPublisher publisher, WorkDemand demand, string messageId, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(demand, WorkJson.Default.WorkDemand);
        while (true)
        {
            var properties = AmqpPublisher.JsonProperties();
            properties.MessageId = messageId;
            properties.Type = WorkNames.DemandKind;
            try
            {
                await publisher.PublishAsync("", settings.RabbitQueue, properties, body, mandatory: true, cancellationToken);
                return;
            }
            catch (AmqpException e) when (e.IsTransient)
            {
                // Not confirmed: it may or may not be there. Same message id again, so a duplicate is a replay downstream.
                await output.WriteLineAsync($"warning: {e.Message} Retrying demand {messageId}.");
                await Task.Delay(RetryDelay, cancellationToken);
            }
        }
    }

    private async Task<IConnection> ConnectAsync(ConnectionFactory factory, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await factory.CreateConnectionAsync(cancellationToken);
            }
            catch (BrokerUnreachableException e) when (!cancellationToken.IsCancellationRequested)
            {
                if (attempt == 1 || attempt % 30 == 0)
                    await output.WriteLineAsync($"warning: RabbitMQ at {factory.HostName}:{factory.Port} is unreachable ({e.GetBaseException().Message}); retrying every second.");
                await Task.Delay(RetryDelay, cancellationToken);
            }
        }
    }
}
