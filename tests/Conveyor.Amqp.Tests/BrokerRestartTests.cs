using System.Text;

namespace Conveyor.Amqp.Tests;

/// <summary>The broker is killed (SIGKILL) and restarted under load; everything it confirmed must end up as exactly one job.</summary>
public sealed class BrokerRestartTests(PrivateRabbit rabbit, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<PrivateRabbit>
{
    [Fact]
    public async Task Ingest_loses_nothing_acknowledged_across_a_broker_restart()
    {
        const int total = 3000;
        var source = TestBroker.UniqueName("restart");
        var queue = TestBroker.UniqueName("restartjobs");
        await using (var connection = await TestBroker.ConnectAsync(rabbit.Uri)) await TestBroker.DeclareQueueAsync(connection, source);
        await using var server = await IngestServer.StartAsync(rabbit.Uri, [new AmqpIngestRoute(source, queue)]);
        var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = rabbit.Uri });
        var renew = new SemaphoreSlim(1, 1);
        var failingSince = DateTime.MaxValue;

        // A producer that keeps publishing through the restart, retrying each message until the broker confirms it.
        var halfway = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var retries = 0;
        var unroutable = 0;
        var producer = Task.Run(async () =>
        {
            for (var start = 0; start < total; start += 50)
            {
                await Task.WhenAll(Enumerable.Range(start, 50).Select(async i =>
                {
                    while (true)
                    {
                        try
                        {
                            await client.PublishAsync(source, Encoding.UTF8.GetBytes($$"""{"n":{{i}}}"""), new AmqpSendOptions { MessageId = $"msg-{i}" });
                            failingSince = DateTime.MaxValue;
                            return;
                        }
                        // Unroutable too: a broker that has just started may accept connections a moment before its
                        // durable queues are back. A queue that never comes back fails the count at the end.
                        catch (AmqpException e) when (e.IsTransient || e.Failure == AmqpFailure.Unroutable)
                        {
                            Interlocked.Increment(ref retries);
                            if (e.Failure == AmqpFailure.Unroutable) Interlocked.Increment(ref unroutable);
                            await Task.Delay(100);
                            await RenewWhenStuckAsync();
                        }
                    }
                }));
                if (start >= total / 3) halfway.TrySetResult();
                await Task.Delay(5); // a steady stream rather than one burst, so the restart lands in the middle of it
            }
        });

        // Like any careful producer: a client whose connection has not come back after 10 s is replaced.
        async Task RenewWhenStuckAsync()
        {
            await renew.WaitAsync();
            try
            {
                if (failingSince == DateTime.MaxValue) failingSince = DateTime.UtcNow;
                else if (DateTime.UtcNow - failingSince > TimeSpan.FromSeconds(10))
                {
                    var old = client;
                    client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = rabbit.Uri });
                    failingSince = DateTime.MaxValue;
                    _ = old.DisposeAsync().AsTask().ContinueWith(_ => { }, TaskScheduler.Default);
                    output.WriteLine("replaced the producer's client");
                }
            }
            finally
            {
                renew.Release();
            }
        }

        // Kill the broker while a third is published: the rest is published, delivered and acknowledged around the restart.
        await halfway.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var before = await server.CountAsync(queue);
        await rabbit.RestartAsync();
        output.WriteLine($"restarted the broker with {before} of {total} jobs committed");

        await producer.WaitAsync(TimeSpan.FromSeconds(120));
        await TestBroker.Eventually(async () => await server.CountAsync(queue) >= total, $"{total} jobs", 90);
        await using (var connection = await TestBroker.ConnectAsync(rabbit.Uri))
            await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, source) == 0, "the queue drained");

        await client.DisposeAsync();
        var keys = (await server.JobsAsync(queue)).Select(j => (string)j["idempotency_key"]!).ToList();
        output.WriteLine($"{retries} publishes retried ({unroutable} unroutable)");
        Assert.Equal(total, keys.Count);
        Assert.Equal(Enumerable.Range(0, total).Select(i => $"msg-{i}").Order(), keys.Order());
    }

    [Fact]
    public async Task A_worker_and_its_callers_carry_on_after_a_broker_restart()
    {
        var name = TestBroker.UniqueName("survivor");
        await using var worker = new AmqpWorker(
            new AmqpWorkerOptions { Uri = rabbit.Uri, Queue = name, Version = "2.0.0" },
            (message, _) => Task.FromResult<ReadOnlyMemory<byte>>(Encoding.UTF8.GetBytes($"\"echo {message.Text}\"")));
        await worker.StartAsync(CancellationToken.None);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = rabbit.Uri, DefaultTimeout = TimeSpan.FromSeconds(5) });
        Assert.Equal("\"echo a\"", (await client.CallAsync(worker.QueueName, "a"u8.ToArray())).Text);

        await rabbit.RestartAsync();

        // Calls during the recovery fail with a transient error, or as unroutable while the broker accepts connections a
        // moment before its durable queues are back (seen in CI); once both sides are back, calls work again without a
        // restart. A queue that never comes back fails the call after the deadline.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                Assert.Equal("\"echo b\"", (await client.CallAsync(worker.QueueName, "b"u8.ToArray())).Text);
                break;
            }
            catch (AmqpException e) when ((e.IsTransient || e.Failure == AmqpFailure.Unroutable) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }
}
