using Conveyor.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Npgsql;
using WorkToDo.Core;

namespace WorkToDo.Api;

/// <summary>The API as a <see cref="WebApplication"/>: the program runs it, the end-to-end test starts it in process.</summary>
public static class WorkApi
{
    public static async Task<WebApplication> BuildAsync(ApiSettings settings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (settings.ConsoleLogs) builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.UseUtcTimestamp = true; });
        builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning); // IHttpClientFactory logs every request at Information
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning); // and ASP.NET Core each step of every request
        builder.WebHost.UseUrls(settings.Url);
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(NpgsqlDataSource.Create(settings.Postgres));
        builder.Services.AddSingleton(sp => new WorkStore(sp.GetRequiredService<NpgsqlDataSource>(), settings.Schema));
        builder.Services.AddSingleton<WorkQueue>();
        builder.Services.AddHostedService<PendingWorkRequeuer>();
        builder.Services.AddConveyor(o =>
        {
            o.BaseAddress = settings.Conveyor;
            o.ApiKey = settings.ConveyorApiKey;
        });
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = context =>
        {
            // A database outage is worth a sentence; a bug is not worth leaking internals for.
            if (context.Exception is NpgsqlException)
            {
                context.ProblemDetails.Detail = "The database is unreachable; nothing was changed. Retry later.";
            }
        });
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, WorkJson.Default));

        var app = builder.Build();
        app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = e => e is NpgsqlException ? 503 : 500 });
        app.UseStatusCodePages();
        WorkEndpoints.Map(app);

        // The app owns its schema: applied before listening, so a wrong connection string fails the start, not a request.
        await app.Services.GetRequiredService<WorkStore>().ApplySchemaAsync(cancellationToken);
        return app;
    }

    /// <summary>The address a started app listens on (the real port when started with port 0).</summary>
    public static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
}
