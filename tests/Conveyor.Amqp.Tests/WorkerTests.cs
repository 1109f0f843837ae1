using System.Text;

namespace Conveyor.Amqp.Tests;

public sealed class WorkerTests
{
    private sealed record Email(string To);
    private sealed record Sent(string Id, string To);

    private static AmqpWorkerOptions Options(string name, int concurrency = 4) =>
        new() { Uri = TestBroker.Uri, Queue = name, Version = "1.0.0", MaxConcurrency = concurrency };

    [Fact]
    public async Task A_worker_answers_rpc_calls_concurrently_within_its_bound()
    {
        var name = TestBroker.UniqueName("emailjob");
        var running = 0;
        var peak = 0;
        var handler = AmqpWorker.Json<Email, Sent>(async (email, ct) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            await Task.Delay(50, ct); // a handler that takes a moment, so calls overlap
            Interlocked.Decrement(ref running);
            return new Sent(Guid.NewGuid().ToString("N"), email.To);
        });
        await using var worker = new AmqpWorker(Options(name, concurrency: 3), handler);
        await worker.StartAsync(CancellationToken.None);
        Assert.Equal($"{name}-v1.0.0", worker.QueueName);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });

        var calls = Enumerable.Range(0, 12).Select(i => client.CallJsonAsync<Email, Sent>(worker.QueueName, new Email($"u{i}@example.com"))).ToList();
        var replies = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Enumerable.Range(0, 12).Select(i => $"u{i}@example.com"), replies.Select(r => r!.To));
        Assert.InRange(peak, 2, 3);
    }

    [Fact]
    public async Task A_worker_handles_and_acknowledges_messages_that_ask_for_no_reply()
    {
        var name = TestBroker.UniqueName("notify");
        var seen = new System.Collections.Concurrent.ConcurrentBag<string>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var worker = new AmqpWorker(Options(name), (message, _) =>
        {
            seen.Add(message.Text);
            if (seen.Count == 20) all.TrySetResult();
            return Task.FromResult(ReadOnlyMemory<byte>.Empty);
        });
        await worker.StartAsync(CancellationToken.None);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });

        for (var i = 0; i < 20; i++) await client.PublishAsync(worker.QueueName, Encoding.UTF8.GetBytes($"m{i}"));
        await all.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await worker.StopAsync(CancellationToken.None);

        await using var connection = await TestBroker.ConnectAsync();
        Assert.Equal(0u, await TestBroker.ReadyCountAsync(connection, worker.QueueName)); // acknowledged, not requeued by the stop
        Assert.Equal(0u, await TestBroker.ReadyCountAsync(connection, name + "-v1.0.0.dead"));
        Assert.Equal(20, seen.Distinct().Count());
    }

    [Fact]
    public async Task A_handler_exception_becomes_an_error_reply_and_the_worker_keeps_serving()
    {
        var name = TestBroker.UniqueName("flaky");
        await using var worker = new AmqpWorker(Options(name), (message, _) =>
            message.Text == "boom" ? throw new InvalidOperationException("kaboom") : Task.FromResult<ReadOnlyMemory<byte>>("\"fine\""u8.ToArray()));
        await worker.StartAsync(CancellationToken.None);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });

        var error = await Assert.ThrowsAsync<AmqpException>(() => client.CallAsync(worker.QueueName, "boom"u8.ToArray()));
        Assert.Equal(AmqpFailure.RemoteError, error.Failure);
        Assert.Contains("kaboom", error.Message);
        Assert.False(error.IsTransient);

        var reply = await client.CallAsync(worker.QueueName, "ok"u8.ToArray());
        Assert.Equal("\"fine\"", reply.Text);
    }

    [Fact]
    public async Task A_failed_message_without_reply_to_is_dead_lettered()
    {
        var name = TestBroker.UniqueName("deadletter");
        var handled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var worker = new AmqpWorker(Options(name), async (message, _) =>
        {
            await Task.Yield();
            handled.TrySetResult();
            throw new InvalidOperationException("cannot send");
        });
        await worker.StartAsync(CancellationToken.None);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });
        await client.PublishAsync(worker.QueueName, "{}"u8.ToArray(), new AmqpSendOptions { MessageId = "poison" });
        await handled.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await using var connection = await TestBroker.ConnectAsync();
        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, $"{name}-v1.0.0.dead") == 1, "the message in the dead-letter queue");
        await using var channel = await connection.CreateChannelAsync();
        var dead = await channel.BasicGetAsync($"{name}-v1.0.0.dead", autoAck: true);
        Assert.Equal("poison", dead!.BasicProperties.MessageId);
    }

    [Fact]
    public async Task A_call_nobody_answers_times_out_with_a_clear_exception()
    {
        var queue = TestBroker.UniqueName("silent");
        await using (var connection = await TestBroker.ConnectAsync()) await TestBroker.DeclareQueueAsync(connection, queue);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });

        var error = await Assert.ThrowsAsync<AmqpException>(() =>
            client.CallAsync(queue, "{}"u8.ToArray(), new AmqpSendOptions { Timeout = TimeSpan.FromMilliseconds(300) }));
        Assert.Equal(AmqpFailure.Timeout, error.Failure);
        Assert.Contains($"Is a worker consuming '{queue}'", error.Message);

        var unroutable = await Assert.ThrowsAsync<AmqpException>(() => client.PublishAsync(TestBroker.UniqueName("nosuchqueue"), "{}"u8.ToArray()));
        Assert.Equal(AmqpFailure.Unroutable, unroutable.Failure);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }
}
