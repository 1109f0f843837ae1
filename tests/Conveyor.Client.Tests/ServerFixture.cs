using System.Text.Json.Serialization;
using Conveyor.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Conveyor.Client.Tests;

/// <summary>A real server on a loopback port with its own SQLite file, shared by one test class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private static int _counter;
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-sdk-").FullName;
    private RunningServer? _server;

    public Uri BaseAddress => _server!.BaseAddress;

    public ConveyorClient Client { get; private set; } = null!;

    public static string UniqueQueue(string prefix) => $"{prefix}-{Interlocked.Increment(ref _counter)}-{Environment.ProcessId}";

    public async Task InitializeAsync()
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions { Port = 0, DataDirectory = _directory, Out = null });
        Client = new ConveyorClient(_server.BaseAddress);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A host with the client (through IHttpClientFactory) and the worker, handlers added by the test; not started.</summary>
    public IHost Worker(Action<ConveyorWorkerOptions> configure, Action<ConveyorWorkerBuilder> handlers, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.Services.AddConveyor(o => o.BaseAddress = BaseAddress);
        handlers(builder.Services.AddConveyorWorker(o =>
        {
            // Short polls keep shutdown quick in tests; the default is 5 s.
            o.PollWait = TimeSpan.FromMilliseconds(500);
            o.WorkerName = "test-worker";
            configure(o);
        }));
        services?.Invoke(builder.Services);
        return builder.Build();
    }
}

/// <summary>Bounds for every wait in these tests: a hang fails one test instead of the run.</summary>
internal static class Limits
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    public static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    public static Task Within<T>(this TaskCompletionSource<T> signal) => signal.Task.WaitAsync(Wait);

    public static Task Within(this TaskCompletionSource signal) => signal.Task.WaitAsync(Wait);
}

public sealed record Order(string Customer, int Quantity, decimal Price);

public sealed record Quote(string Customer, decimal Total);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(Order))]
[JsonSerializable(typeof(Quote))]
internal sealed partial class TestJson : JsonSerializerContext;
