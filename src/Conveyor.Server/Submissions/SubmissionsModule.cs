using Conveyor.Submissions;
using Conveyor.Submissions.Postgres;
using Conveyor.Submissions.Sqlite;

namespace Conveyor.Server.Submissions;

/// <summary>
/// Submissions as one component beside the job engine: its own store (<c>submissions.db</c> next to the job database, or
/// its own tables in the same PostgreSQL schema), the object store, three background loops, and the routes. The server
/// wires it with two calls; the job store only sees the callback jobs it enqueues.
/// </summary>
internal static class SubmissionsModule
{
    public static async Task AddAsync(IServiceCollection services, ServerOptions options, CancellationToken cancellationToken)
    {
        ISubmissionStore store = options.PostgresConnectionString is { } connectionString
            ? await PostgresSubmissionStore.OpenAsync(new PostgresSubmissionStoreOptions
            {
                ConnectionString = connectionString,
                Schema = options.PostgresSchema,
                TimeProvider = options.TimeProvider,
            }, cancellationToken)
            : SqliteSubmissionStore.Open(new SqliteSubmissionStoreOptions
            {
                Path = Path.Combine(options.DataDirectory, "submissions.db"),
                TimeProvider = options.TimeProvider,
            });
        // A factory registration, so the container disposes the store at shutdown (it does not dispose given instances).
        services.AddSingleton(_ => store);
        services.AddSingleton<IObjectStore>(new DirectoryObjectStore(options.ObjectStoreDirectory ?? Path.Combine(options.DataDirectory, "objects")));
        services.AddSingleton<ChunkSignal>();
        services.AddSingleton<ChunkOperations>();
        services.AddSingleton<SubmissionCallbackDispatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<SubmissionCallbackDispatcher>());
        services.AddSingleton<SubmissionLeaseReaper>();
        services.AddHostedService(sp => sp.GetRequiredService<SubmissionLeaseReaper>());
        services.AddSingleton<SubmissionRetentionSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<SubmissionRetentionSweeper>());
    }

    public static void Map(WebApplication app)
    {
        Sockets.MessageSocket.UseWebSocketsAt(app, "/v1/consume");
        SubmissionEndpoints.Map(app);
    }
}
