using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace Conveyor.Amqp;

/// <summary>
/// One RabbitMQ queue consumed into one Conveyor queue: a consumer with manual acks and a prefetch window, and one batch
/// loop that commits up to <see cref="AmqpIngestOptions.BatchSize"/> messages with one <c>JobInsertManyAsync</c> and
/// then acknowledges them all with one multiple-ack.
/// </summary>
internal sealed class RouteIngest(
    AmqpIngestRoute route, IConnection connection, IJobStore store, RpcReplier replier, AmqpIngestOptions options, ILogger logger)
{
    private readonly record struct Delivery(IChannel Channel, ulong Tag, MappedMessage Mapped);

    // Unbounded on purpose: the broker's prefetch window (basic.qos) already bounds what can be in it.
    private readonly Channel<Delivery> _deliveries = Channel.CreateUnbounded<Delivery>(new UnboundedChannelOptions { SingleReader = true });

    // Cancelled to give up on what is in hand (a crash, or the host's stop timeout): nothing more is committed or acked.
    private readonly CancellationTokenSource _abandon = new();
    private IChannel? _channel;
    private string? _consumerTag;
    private Task _batches = Task.CompletedTask;
    private int _reopening;
    private volatile bool _stopping;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await OpenAsync(cancellationToken).ConfigureAwait(false);
        _batches = Task.Run(BatchLoopAsync, CancellationToken.None);
        AmqpLog.IngestStarted(logger, route.RabbitQueue, route.Queue);
    }

    private async Task OpenAsync(CancellationToken cancellationToken)
    {
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            // Use the queue as it is when it exists (it may have arguments, a dead-letter exchange, a type we must not contradict).
            await channel.QueueDeclarePassiveAsync(route.RabbitQueue, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
        {
            // A failed passive declare closes the channel; declare the queue (durable, classic) on a fresh one.
            await channel.DisposeAsync().ConfigureAwait(false);
            channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueDeclareAsync(route.RabbitQueue, durable: true, exclusive: false, autoDelete: false, arguments: null,
                cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        await channel.BasicQosAsync(0, options.Prefetch, global: false, cancellationToken).ConfigureAwait(false);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += OnReceivedAsync;
        channel.ChannelShutdownAsync += OnChannelShutdownAsync;
        _channel = channel;
        _consumerTag = await channel.BasicConsumeAsync(route.RabbitQueue, autoAck: false, consumer, cancellationToken).ConfigureAwait(false);
    }

    private Task OnReceivedAsync(object sender, BasicDeliverEventArgs args)
    {
        // The body is only valid during this call: mapping copies what the job needs.
        var mapped = MessageMapper.Map(route.Queue, args.BasicProperties, args.Body.Span, options.MaxPayloadBytes, options.TimeProvider.GetUtcNow());
        var channel = ((AsyncEventingBasicConsumer)sender).Channel;

        // Refused only while stopping: the message stays unacknowledged and RabbitMQ redelivers it after the channel closes.
        _deliveries.Writer.TryWrite(new Delivery(channel, args.DeliveryTag, mapped));
        return Task.CompletedTask;
    }

    /// <summary>
    /// A connection loss is repaired by automatic recovery (same channel object, consumer re-registered). A channel the
    /// broker closed on its own (queue deleted, a protocol error) is not: open a new one once the connection is fine.
    /// </summary>
    private Task OnChannelShutdownAsync(object sender, ShutdownEventArgs e)
    {
        if (_stopping || Interlocked.Exchange(ref _reopening, 1) == 1) return Task.CompletedTask;
        _ = Task.Run(async () =>
        {
            try
            {
                var closedChecks = 0;
                while (!_stopping && !_abandon.IsCancellationRequested)
                {
                    await Task.Delay(options.ReconnectInterval, _abandon.Token).ConfigureAwait(false);
                    if (_channel is { IsOpen: true }) return; // recovered with the connection
                    // Twice in a row closed while the connection is open: recovery is not going to bring it back.
                    closedChecks = connection.IsOpen ? closedChecks + 1 : 0;
                    if (closedChecks < 2) continue;
                    AmqpLog.ChannelClosed(logger, route.RabbitQueue, e.ReplyText, (int)options.ReconnectInterval.TotalMilliseconds);
                    try
                    {
                        await OpenAsync(_abandon.Token).ConfigureAwait(false);
                        return;
                    }
                    catch (Exception ex) when (AmqpConnections.IsConnectionLoss(ex))
                    {
                        closedChecks = 0;
                    }
                }
            }
            catch (OperationCanceledException) { }
            finally
            {
                Interlocked.Exchange(ref _reopening, 0);
            }
        });
        return Task.CompletedTask;
    }

    private async Task BatchLoopAsync()
    {
        var reader = _deliveries.Reader;
        var batch = new List<Delivery>(options.BatchSize);
        try
        {
            while (await reader.WaitToReadAsync(_abandon.Token).ConfigureAwait(false))
            {
                while (batch.Count < options.BatchSize && reader.TryRead(out var delivery)) batch.Add(delivery);
                if (batch.Count < options.BatchSize && options.BatchDelay > TimeSpan.Zero) await TopUpAsync(reader, batch).ConfigureAwait(false);
                await CommitAsync(batch).ConfigureAwait(false);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (_abandon.IsCancellationRequested)
        {
            // Abandoned: whatever is in hand stays unacknowledged and comes back from RabbitMQ.
        }
    }

    /// <summary>Waits up to <see cref="AmqpIngestOptions.BatchDelay"/> for more messages, so a trickle still shares one commit.</summary>
    private async Task TopUpAsync(ChannelReader<Delivery> reader, List<Delivery> batch)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_abandon.Token);
        timeout.CancelAfter(options.BatchDelay);
        try
        {
            while (batch.Count < options.BatchSize && await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false))
            {
                while (batch.Count < options.BatchSize && reader.TryRead(out var delivery)) batch.Add(delivery);
            }
        }
        catch (OperationCanceledException) when (!_abandon.IsCancellationRequested) { }
    }

    private async Task CommitAsync(List<Delivery> batch)
    {
        var jobs = new List<NewJob>(batch.Count);
        foreach (var d in batch)
        {
            if (d.Mapped.Job is { } job) jobs.Add(job);
        }
        var outcomes = await InsertAsync(jobs).ConfigureAwait(false);

        // DURABILITY CHECKPOINT: everything in `outcomes` with an id is committed. Only now may RabbitMQ forget it.
        var accepted = new List<Delivery>(batch.Count);
        var j = 0;
        foreach (var d in batch)
        {
            string? reason = d.Mapped.Error;
            if (d.Mapped.Job is not null)
            {
                var outcome = outcomes[j++];
                if (outcome.Id is { } id && d.Mapped.Reply is { } reply) replier.Track(id, reply);
                reason = outcome.Error;
            }
            if (reason is null)
            {
                accepted.Add(d);
                continue;
            }
            AmqpLog.MessageRejected(logger, route.RabbitQueue, reason);
            await SettleAsync(() => d.Channel.BasicNackAsync(d.Tag, multiple: false, requeue: false), 1).ConfigureAwait(false);
        }
        var rejected = batch.Count - accepted.Count;

        // One multiple-ack per channel for the highest accepted tag: every lower tag of that channel was handled in order
        // before it (acked now, or nacked just above). The highest tag of the batch will not do when it was the one nacked:
        // RabbitMQ answers an ack of a tag no longer outstanding by closing the channel, which hands the batch's unsettled
        // (already committed) messages to the queue again.
        foreach (var group in accepted.GroupBy(d => d.Channel))
        {
            var channel = group.Key;
            var last = group.Max(d => d.Tag);
            await SettleAsync(() => channel.BasicAckAsync(last, multiple: true), group.Count()).ConfigureAwait(false);
        }
        AmqpMetrics.Ingested.Add(batch.Count - rejected);
        if (rejected > 0) AmqpMetrics.Rejected.Add(rejected);
    }

    private async Task SettleAsync(Func<ValueTask> settle, int count)
    {
        try
        {
            await settle().ConfigureAwait(false);
        }
        catch (Exception e) when (AmqpConnections.IsConnectionLoss(e))
        {
            // The connection or channel went away after the commit: RabbitMQ redelivers, the idempotency key (if any) replays.
            AmqpLog.AckFailed(logger, count, route.RabbitQueue, e.Message);
        }
    }

    private readonly record struct InsertOutcome(long? Id, string? Error);

    /// <summary>
    /// Inserts, retrying while the store is unavailable (the messages stay unacknowledged meanwhile). A batch the store
    /// refuses for another reason is split, so one bad job is refused alone instead of blocking the queue.
    /// </summary>
    private async Task<InsertOutcome[]> InsertAsync(List<NewJob> jobs)
    {
        if (jobs.Count == 0) return [];
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                var inserted = await store.JobInsertManyAsync(jobs, _abandon.Token).ConfigureAwait(false);
                return inserted.Select(i => new InsertOutcome(i.Id, null)).ToArray();
            }
            catch (StoreUnavailableException e)
            {
                AmqpLog.InsertFailed(logger, e, jobs.Count, route.RabbitQueue, (int)delay.TotalMilliseconds);
                await Task.Delay(delay, _abandon.Token).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
            catch (Exception e) when (e is not OperationCanceledException && e is not ObjectDisposedException)
            {
                if (jobs.Count == 1) return [new InsertOutcome(null, $"the store refused the job: {e.Message}")];
                var outcomes = new List<InsertOutcome>(jobs.Count);
                foreach (var job in jobs) outcomes.AddRange(await InsertAsync([job]).ConfigureAwait(false));
                return outcomes.ToArray();
            }
        }
    }

    /// <summary>Stops consuming, commits and acknowledges what is in hand, then closes the channel.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        using var giveUp = cancellationToken.Register(() => _abandon.Cancel());
        if (_channel is { IsOpen: true } channel && _consumerTag is not null)
        {
            try
            {
                await channel.BasicCancelAsync(_consumerTag, noWait: false, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e) || e is OperationCanceledException) { }
        }
        _deliveries.Writer.TryComplete();
        await _batches.ConfigureAwait(false);
        if (_channel is { } open)
        {
            try
            {
                if (open.IsOpen) await open.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
            await open.DisposeAsync().ConfigureAwait(false);
        }
        _abandon.Dispose();
    }

    /// <summary>Gives up on everything in hand without committing or acknowledging (a simulated crash).</summary>
    public void Abandon()
    {
        _stopping = true;
        _abandon.Cancel();
        _deliveries.Writer.TryComplete();
    }
}
