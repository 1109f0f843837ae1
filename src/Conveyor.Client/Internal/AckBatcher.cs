using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Conveyor.Client.Internal;

/// <summary>
/// Sends job outcomes (completes, fails, releases) in batches through <c>POST /v1/jobs/ack</c>. There is no artificial
/// delay: while one request is in flight the next outcomes pile up, and the next request takes all of them (up to the
/// batch size), so batches grow with load, like the server's group commit.
/// </summary>
internal sealed class AckBatcher(ConveyorClient client, int maxBatch, ILogger logger, TimeProvider time)
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LastRetry = TimeSpan.FromSeconds(5);

    // Unbounded on purpose: each item is one job this worker holds a lease on, and the queues' slots bound those.
    private readonly Channel<PendingAck> _channel = Channel.CreateUnbounded<PendingAck>(new UnboundedChannelOptions { SingleReader = true });

    public void Post(PendingAck ack)
    {
        if (!_channel.Writer.TryWrite(ack))
        {
            // Only after Complete(): the sender has stopped, so this outcome cannot be reported; its lease will expire.
            ack.Done(ack, null, "the worker stopped sending outcomes");
        }
    }

    /// <summary>No more outcomes will come: <see cref="RunAsync"/> sends what is queued and returns.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <param name="giveUp">Cancelled when the host stops waiting: outcomes not yet sent are abandoned (their leases expire).</param>
    public async Task RunAsync(CancellationToken giveUp)
    {
        var batch = new List<PendingAck>(maxBatch);
        while (await _channel.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (batch.Count < maxBatch && _channel.Reader.TryRead(out var ack))
            {
                batch.Add(ack);
            }

            await SendAsync(batch, giveUp).ConfigureAwait(false);
            batch.Clear();
        }
    }

    private async Task SendAsync(List<PendingAck> batch, CancellationToken giveUp)
    {
        // The server answers completes first, then fails, then releases, each in request order: send in that order.
        var ordered = batch.Where(a => a.Kind == AckKind.Complete)
            .Concat(batch.Where(a => a.Kind == AckKind.Fail))
            .Concat(batch.Where(a => a.Kind == AckKind.Release))
            .ToList();
        var request = new AckRequest
        {
            Complete = Items(ordered, AckKind.Complete, a => new AckComplete { Id = a.Held.Id, LeaseToken = a.Held.Token, Result = a.Result }),
            Fail = Items(ordered, AckKind.Fail, a => new AckFail
            {
                Id = a.Held.Id,
                LeaseToken = a.Held.Token,
                Error = a.Error!,
                Stack = a.Stack,
                RetryInMs = a.RetryInMs,
                Dead = a.Dead ? true : null,
            }),
            Release = Items(ordered, AckKind.Release, a => new AckRelease { Id = a.Held.Id, LeaseToken = a.Held.Token }),
        };

        var delay = FirstRetry;
        while (true)
        {
            try
            {
                // At-least-once checkpoint: an outcome counts only once the server answered for it.
                var results = await client.AckAsync(request, giveUp).ConfigureAwait(false);
                for (var i = 0; i < ordered.Count; i++)
                {
                    var result = i < results.Count && results[i].Id == ordered[i].Held.Id ? results[i] : null;
                    Finish(ordered[i], result?.Status, result?.Detail);
                }

                return;
            }
            catch (ConveyorException exception) when (exception.IsTransient && !giveUp.IsCancellationRequested)
            {
                WorkerLog.AckFailed(logger, exception, ordered.Count, delay);
                try
                {
                    await Task.Delay(delay, time, giveUp).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    Abandon(ordered);
                    return;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, LastRetry.Ticks));
            }
            catch (ConveyorException)
            {
                if (giveUp.IsCancellationRequested)
                {
                    Abandon(ordered);
                    return;
                }

                // The batch as a whole was refused (e.g. one result too large): send one by one so the rest still land.
                foreach (var ack in ordered)
                {
                    await SendOneAsync(ack, giveUp).ConfigureAwait(false);
                }

                return;
            }
            catch (OperationCanceledException)
            {
                Abandon(ordered);
                return;
            }
        }
    }

    private async Task SendOneAsync(PendingAck ack, CancellationToken giveUp)
    {
        try
        {
            _ = ack.Kind switch
            {
                AckKind.Complete => await client.CompleteAsync(ack.Held.Id, ack.Held.Token, ack.Result, giveUp).ConfigureAwait(false),
                AckKind.Fail => await client.FailAsync(ack.Held.Id, ack.Held.Token, ack.Error!, ack.RetryInMs, ack.Dead, ack.Stack, giveUp)
                    .ConfigureAwait(false),
                _ => await client.ReleaseAsync(ack.Held.Id, ack.Held.Token, giveUp).ConfigureAwait(false),
            };
            Finish(ack, 200, null);
        }
        catch (InvalidRequestException exception) when (ack.Kind == AckKind.Complete)
        {
            // The result itself was refused (too large, say): record that as the attempt's failure instead of losing it.
            var failed = ack with
            {
                Kind = AckKind.Fail,
                Error = $"the handler's result was refused by the server: {exception.Message}",
                Result = null,
            };
            await SendOneAsync(failed, giveUp).ConfigureAwait(false);
        }
        catch (ConveyorException exception)
        {
            Finish(ack, exception.StatusCode is { } status ? (int)status : null, exception.Message);
        }
        catch (OperationCanceledException)
        {
            Finish(ack, null, "abandoned at shutdown");
        }
    }

    private void Finish(PendingAck ack, int? status, string? detail)
    {
        if (status is not 200)
        {
            WorkerLog.AckRefused(logger, ack.Held.Id, status ?? 0, detail);
        }

        ack.Done(ack, status, detail);
    }

    private void Abandon(List<PendingAck> acks)
    {
        WorkerLog.AckAbandoned(logger, acks.Count);
        foreach (var ack in acks)
        {
            ack.Done(ack, null, "abandoned at shutdown");
        }
    }

    private static List<T>? Items<T>(List<PendingAck> ordered, AckKind kind, Func<PendingAck, T> build)
    {
        List<T>? items = null;
        foreach (var ack in ordered)
        {
            if (ack.Kind == kind)
            {
                (items ??= []).Add(build(ack));
            }
        }

        return items;
    }
}
