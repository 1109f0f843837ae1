using Conveyor.Amqp;
using Conveyor.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using WorkToDo.Api;
using WorkToDo.Core;
using WorkToDo.TaskConsumer;

namespace Conveyor.Examples.WorkToDo.Tests;

/// <summary>
/// The whole example in this process, wired as run.sh wires the programs: a Conveyor server keeping its jobs in PostgreSQL
/// and ingesting a RabbitMQ queue into "work", the API, the consumer. Each stack has its own schemas and RabbitMQ queue,
/// so stacks of parallel test classes never see each other's works.
/// </summary>
public sealed class WorkToDoStack : IAsyncLifetime
{
    private RunningServer? _conveyor;
    private WebApplication? _api;
    private IHost? _consumer;
    private string? _dataDirectory;

    public string Schema { get; } = TestServices.Unique("wtd");
    public string ConveyorSchema { get; } = TestServices.Unique("wtd_cv");
    public string RabbitQueue { get; } = TestServices.Unique("work-demands").Replace('_', '-');
    public string Postgres => TestServices.Postgres;
    public Uri Amqp => TestServices.Amqp;
    public Uri ConveyorAddress => _conveyor!.BaseAddress;
    public Uri Api { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public NpgsqlDataSource DataSource { get; } = NpgsqlDataSource.Create(TestServices.Postgres);
    public WorkStore Store { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _dataDirectory = Directory.CreateTempSubdirectory("worktodo-").FullName;
        _conveyor = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = _dataDirectory,
            PostgresConnectionString = Postgres,
            PostgresSchema = ConveyorSchema,
            AmqpUri = Amqp,
            Ingest = [new AmqpIngestRoute(RabbitQueue, WorkNames.ConveyorQueue)],
            Out = null,
        });
        await _conveyor.Services.GetRequiredService<AmqpIngest>().Ready.WaitAsync(TimeSpan.FromSeconds(60));

        _api = await WorkApi.BuildAsync(new ApiSettings
        {
            Url = "http://127.0.0.1:0",
            Postgres = Postgres,
            Schema = Schema,
            Conveyor = ConveyorAddress,
            ConsoleLogs = false,
            // Short, so the test of a lost enqueue needs seconds; other tests only see harmless replays from it.
            RequeueInterval = TimeSpan.FromMilliseconds(250),
            RequeueAfter = TimeSpan.FromSeconds(1),
        });
        await _api.StartAsync();
        Api = WorkApi.Address(_api);
        Http = new HttpClient { BaseAddress = Api, Timeout = TimeSpan.FromSeconds(30) };

        _consumer = await ConsumerHost.BuildAsync(new ConsumerSettings
        {
            Postgres = Postgres,
            Schema = Schema,
            Conveyor = ConveyorAddress,
            PollWait = TimeSpan.FromSeconds(1), // shutdown waits for a poll in flight
            ConsoleLogs = false,
        });
        await _consumer.StartAsync();
        Store = new WorkStore(DataSource, Schema);
    }

    /// <summary>Waits until the work is done (polling the database, as an outside observer would).</summary>
    public Task<Work> DoneAsync(long id, int timeoutSeconds = 30) => ExplainTimeoutAsync(() =>
        TestServices.Eventually(async () => await Store.GetAsync(id) is { Done: true } work ? work : null, $"work {id} to be done", timeoutSeconds));

    /// <summary>Runs <paramref name="wait"/>; on a timeout, says what Conveyor holds (states, kinds, errors) to show where work got stuck.</summary>
    public async Task<T> ExplainTimeoutAsync<T>(Func<Task<T>> wait)
    {
        try
        {
            return await wait();
        }
        catch (TimeoutException e)
        {
            using var conveyor = new HttpClient { BaseAddress = ConveyorAddress };
            var jobs = await conveyor.GetStringAsync($"/v1/jobs?queue={WorkNames.ConveyorQueue}&limit=50");
            throw new TimeoutException($"{e.Message}. Jobs of queue '{WorkNames.ConveyorQueue}': {jobs}", e);
        }
    }

    public async ValueTask<Work> CreateThroughApiAsync()
    {
        using var response = await Http.PostAsync("/work", null);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        var work = System.Text.Json.JsonSerializer.Deserialize(await response.Content.ReadAsStringAsync(), WorkJson.Default.Work)!;
        Assert.Equal($"/work/{work.Id}", response.Headers.Location?.OriginalString);
        return work;
    }

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        if (_consumer is not null)
        {
            await _consumer.StopAsync();
            _consumer.Dispose();
        }
        if (_api is not null) await _api.DisposeAsync();
        if (_conveyor is not null) await _conveyor.DisposeAsync();
        await DataSource.DisposeAsync();
        await TestServices.DropSchemaAsync(Schema);
        await TestServices.DropSchemaAsync(ConveyorSchema);
        await TestServices.DeleteRabbitQueueAsync(RabbitQueue);
        if (_dataDirectory is not null) Directory.Delete(_dataDirectory, recursive: true);
    }
}
