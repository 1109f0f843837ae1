using System.Text.Json;
using Conveyor.Server.Http;
using Conveyor.Server.Metrics;
using Conveyor.Server.Scheduling;
using Conveyor.Server.Security;
using Conveyor.Storage.Postgres;
using Conveyor.Storage.Sqlite;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;

namespace Conveyor.Server;

/// <summary>Builds and runs the HTTP server on the SQLite or PostgreSQL store. The CLI's <c>serve</c> and the tests start it here.</summary>
public static class ConveyorServer
{
    /// <summary>Starts the server and returns once it is listening.</summary>
    public static async Task<RunningServer> StartAsync(ServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        // Conveyor takes its settings from flags and CONVEYOR_* variables, never from appsettings.json: a server started in
        // some project's folder must not pick up that project's file. The host's defaults also watched the working directory
        // and every directory under it (./conveyor-data by default) to reload the file, so each database write became file
        // events for a thread to read: W3 on SQLite completed 12-29 % more jobs/s without it (docs/benchmarks.md). The
        // host reads its files from the install folder instead, without reloading, and they are dropped again.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        foreach (var fileSource in builder.Configuration.Sources.OfType<FileConfigurationSource>().ToList())
            builder.Configuration.Sources.Remove(fileSource);
        builder.Logging.ClearProviders();
        if (options.LogFormat == "json") builder.Logging.AddJsonConsole(o => o.UseUtcTimestamp = true);
        else builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.UseUtcTimestamp = true; });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("Conveyor", LogLevel.Information);
        // Hosting's request logger writes nothing at our levels, but while enabled at all ASP.NET Core gives every request
        // a log scope and an Activity (with its trace id string and AsyncLocal copies). Off, a request gets an Activity
        // only when something records spans (OTLP export, a listener); our spans find the caller's trace themselves.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        builder.WebHost.UseUrls($"http://{options.Host}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBodyBytes);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(options.TimeProvider);
        builder.Services.AddSingleton<ServerClock>();
        builder.Services.AddSingleton<PrometheusExporter>();
        builder.Services.AddSingleton<CronScheduler>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CronScheduler>());
        builder.Services.AddSingleton<RetentionSweeper>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RetentionSweeper>());
        // Before any SQLite connection of this process opens (the submissions store has its own, possibly first).
        SqliteLibrary.Configure();
        // PostgreSQL when a connection string is given (several servers share it); opened here because opening is async.
        var postgres = options.PostgresConnectionString is { } connectionString
            ? await PostgresJobStore.OpenAsync(new PostgresStoreOptions
            {
                ConnectionString = connectionString,
                Schema = options.PostgresSchema,
                TimeProvider = options.TimeProvider,
            }, cancellationToken)
            : null;
        if (postgres is not null) builder.Services.AddSingleton<IJobStore>(_ => postgres);
        else builder.Services.AddSingleton<IJobStore>(sp => SqliteJobStore.Open(new SqliteStoreOptions
        {
            Path = options.DatabasePath,
            TimeProvider = options.TimeProvider,
            MigrationStarting = version => sp.GetRequiredService<ILoggerFactory>().CreateLogger("Conveyor.Storage.Sqlite").LogInformation(
                "Upgrading {Path} to schema version {Version}; a version that rebuilds the jobs table takes a few seconds per million jobs",
                options.DatabasePath, version),
        }));
        if (options.AmqpUri is { } amqp && options.Ingest.Count > 0)
        {
            // RabbitMQ ingest runs beside the endpoints on the same store; it connects in the background and never delays the start.
            builder.Services.AddSingleton(sp => new Amqp.AmqpIngest(sp.GetRequiredService<IJobStore>(), new Amqp.AmqpIngestOptions
            {
                Uri = amqp,
                Routes = options.Ingest,
                MaxPayloadBytes = options.MaxJobBytes,
                TimeProvider = options.TimeProvider,
            }, sp.GetRequiredService<ILoggerFactory>()));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<Amqp.AmqpIngest>());
        }
        // Push delivery: the dispatcher delivers jobs of push queues to their webhook and RabbitMQ destinations.
        builder.Services.AddSingleton<Delivery.PushQueues>();
        builder.Services.AddSingleton<Delivery.HttpDeliverer>();
        builder.Services.AddSingleton<Delivery.AmqpDeliverer>();
        builder.Services.AddSingleton<Delivery.DeliveryDispatcher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Delivery.DeliveryDispatcher>());
        await Submissions.SubmissionsModule.AddAsync(builder.Services, options, cancellationToken);
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = context =>
        {
            // An unreachable store is worth a sentence (retry later); a bug is not worth leaking internals for.
            context.ProblemDetails.Detail ??= context.Exception is StoreUnavailableException unavailable
                ? Http.Problems.UnavailableDetail(unavailable)
                : context.Exception is not null ? "The server failed to handle this request; see the server log." : null;
            // Without a request Activity (nothing records spans) the framework's trace_id is Kestrel's request id; the
            // caller's own trace is the one worth quoting back.
            if (System.Diagnostics.Activity.Current is null
                && context.HttpContext.Request.Headers.TryGetValue("traceparent", out var traceParent) && traceParent.Count == 1)
                context.ProblemDetails.Extensions["trace_id"] = traceParent[0];
        });
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        builder.Services.AddOpenApi("v1", OpenApiDocument.Configure);
        ServerTelemetry.AddOtlpExportWhenConfigured(builder.Services);

        var app = builder.Build();
        app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = e => e is StoreUnavailableException ? 503 : 500 });
        app.UseMiddleware<Http.ProblemStatusMiddleware>();
        app.UseRouting();
        app.UseMiddleware<AccessControlMiddleware>();
        JobEndpoints.Map(app);
        Sockets.JobSocket.Map(app);
        AdminEndpoints.Map(app);
        CompatEndpoints.Map(app);
        MetricsEndpoint.Map(app);
        HealthEndpoints.Map(app);
        Submissions.SubmissionsModule.Map(app);
        app.MapOpenApi("/openapi/{documentName}.json");
        Dashboard.DashboardEndpoints.Map(app);

        // Open the store before listening, so a broken data directory fails the start, not the first request.
        _ = app.Services.GetRequiredService<IJobStore>();
        _ = app.Services.GetRequiredService<ServerClock>(); // uptime counts from here, not from the first request
        _ = app.Services.GetRequiredService<PrometheusExporter>(); // listen before the first job moves
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningServer(app, new Uri(address));
    }

    /// <summary>Runs until SIGTERM/Ctrl-C (or cancellation), then drains in-flight commits. Returns the process exit code.</summary>
    public static async Task<int> RunAsync(ServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return 2;
        }
        RunningServer server;
        try
        {
            server = await StartAsync(options, cancellationToken);
        }
        catch (IOException e)
        {
            await Console.Error.WriteLineAsync($"error: cannot listen on {options.Host}:{options.Port}: {e.Message}");
            return 1;
        }
        catch (StoreUnavailableException e) when (options.PostgresConnectionString is not null)
        {
            await Console.Error.WriteLineAsync($"error: cannot open the PostgreSQL store (schema '{options.PostgresSchema}'): {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException)
        {
            await Console.Error.WriteLineAsync($"error: cannot open the data directory '{options.DataDirectory}': {e.Message}");
            return 1;
        }
        await using (server)
        {
            if (options.Out is { } output)
            {
                var store = options.PostgresConnectionString is null
                    ? $"data: {Path.GetFullPath(options.DataDirectory)}"
                    : $"store: PostgreSQL, schema {options.PostgresSchema}";
                await output.WriteLineAsync($"Conveyor listening on {server.BaseAddress.ToString().TrimEnd('/')} ({store})");
                await output.FlushAsync(cancellationToken);
            }
            await server.WaitForShutdownAsync(cancellationToken);
        }
        return 0;
    }
}

/// <summary>A started server. Disposing it stops it gracefully: no new requests, in-flight commits finish, the store closes.</summary>
public sealed class RunningServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    internal RunningServer(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public IServiceProvider Services => _app.Services;

    public async Task WaitForShutdownAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _app.WaitForShutdownAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
    }

    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
