using Conveyor.Storage.Postgres;

namespace Conveyor.Storage.Tests;

/// <summary>The contract suite against a real PostgreSQL, in a fresh schema per test (so tests run in parallel, isolated).</summary>
public sealed class PostgresJobStoreTests : JobStoreContractTests
{
    private readonly string _schema = TestPostgres.UniqueSchema("contract");

    private Task<PostgresJobStore> Open() => PostgresJobStore.OpenAsync(new PostgresStoreOptions
    {
        ConnectionString = TestPostgres.ConnectionString,
        Schema = _schema,
        TimeProvider = Time,
        RunMaintenanceLoop = false,
    });

    protected override async Task<IJobStore> OpenAsync() => await Open();

    protected override async Task<IJobStore> ReopenAsync()
    {
        await Store.DisposeAsync();
        return await Open();
    }

    protected override Task MaintainAsync() => ((PostgresJobStore)Store).RunMaintenanceAsync();

    /// <summary>Leases are rows shared by every server on the database: a restart of one server does not end them.</summary>
    protected override bool LeasesSurviveRestart => true;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }
}
