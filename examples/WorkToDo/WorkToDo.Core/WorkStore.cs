using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace WorkToDo.Core;

/// <summary>
/// The example's data access and business logic on PostgreSQL, used by every program: the API creates and reads works,
/// the consumer computes them, the CLI reads them directly with <c>--call-type db</c>.
/// </summary>
public sealed partial class WorkStore
{
    public const int MaxSearchResults = 1000;
    private const string UniqueViolation = "23505";

    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _time;
    private readonly WorkSql _sql;

    public WorkStore(NpgsqlDataSource dataSource, string schema = WorkNames.DefaultSchema, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ValidateSchema(schema);
        _dataSource = dataSource;
        _time = time ?? TimeProvider.System;
        _sql = new WorkSql(schema);
    }

    /// <summary>Throws with a sentence to act on unless <paramref name="schema"/> is a plain lower-case identifier.</summary>
    public static void ValidateSchema(string? schema)
    {
        if (schema is null || !SchemaName().IsMatch(schema))
            throw new ArgumentException($"The schema must be lower-case letters, digits and _ (at most 48, not starting with a digit), not '{schema}'.");
    }

    /// <summary>Throws with a sentence to act on unless <paramref name="connectionString"/> parses as an Npgsql connection string.</summary>
    public static void ValidateConnectionString(string? connectionString, string option = "--postgres")
    {
        try
        {
            if (string.IsNullOrWhiteSpace(new NpgsqlConnectionStringBuilder(connectionString).Host)) throw new ArgumentException("no Host");
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException(
                $"{option} must be an Npgsql connection string such as \"Host=127.0.0.1;Username=postgres;Database=postgres\" ({e.Message}).", e);
        }
    }

    public long Now => _time.GetUtcNow().ToUnixTimeSeconds();

    /// <summary>Creates the schema and tables when missing (every program calls this at start; it is idempotent).</summary>
    public async Task ApplySchemaAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand(_sql.Schema, connection, transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Creates a work with a fresh <c>api-</c> code (a code collision, about 1 in 10^15, picks another).</summary>
    public async Task<Work> CreateApiWorkAsync(int addUpTo, CancellationToken cancellationToken = default)
    {
        ValidateAddUpTo(addUpTo);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var command = _dataSource.CreateCommand(_sql.Insert);
                command.Parameters.AddWithValue("code", WorkCodes.NewApiCode());
                command.Parameters.AddWithValue("add_up_to", addUpTo);
                command.Parameters.AddWithValue("now", Now);
                return (await ReadWorksAsync(command, cancellationToken))[0];
            }
            catch (PostgresException e) when (e.SqlState == UniqueViolation && attempt < 3)
            {
            }
        }
    }

    /// <summary>Creates the work for a demand, or returns the one an earlier delivery of the same demand created.</summary>
    public async Task<Work> CreateOrGetAsync(string workCode, int addUpTo, CancellationToken cancellationToken = default)
    {
        ValidateAddUpTo(addUpTo);
        await using (var insert = _dataSource.CreateCommand(_sql.InsertIfAbsent))
        {
            insert.Parameters.AddWithValue("code", workCode);
            insert.Parameters.AddWithValue("add_up_to", addUpTo);
            insert.Parameters.AddWithValue("now", Now);
            if ((await ReadWorksAsync(insert, cancellationToken)) is [var created]) return created;
        }
        return await GetByCodeAsync(workCode, cancellationToken)
            ?? throw new InvalidOperationException($"Work '{workCode}' conflicted on insert but cannot be read; was it deleted meanwhile?");
    }

    public async Task<Work?> GetAsync(long id, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_sql.ById);
        command.Parameters.AddWithValue("id", id);
        return (await ReadWorksAsync(command, cancellationToken)).SingleOrDefault();
    }

    public async Task<Work?> GetByCodeAsync(string workCode, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_sql.ByCode);
        command.Parameters.AddWithValue("code", workCode);
        return (await ReadWorksAsync(command, cancellationToken)).SingleOrDefault();
    }

    /// <summary>Works whose code starts with <paramref name="codePrefix"/> created within <paramref name="window"/>, newest first.</summary>
    public async Task<IReadOnlyList<Work>> SearchAsync(string? codePrefix, TimeSpan window, int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxSearchResults);
        await using var command = _dataSource.CreateCommand(_sql.Search);
        command.Parameters.AddWithValue("pattern", EscapeLike(codePrefix ?? "") + "%");
        command.Parameters.AddWithValue("since", Now - (long)window.TotalSeconds);
        command.Parameters.AddWithValue("limit", limit);
        return await ReadWorksAsync(command, cancellationToken);
    }

    public async Task<IReadOnlyList<WorkEvent>> EventsAsync(string workCode, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_sql.Events);
        command.Parameters.AddWithValue("code", workCode);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<WorkEvent>();
        while (await reader.ReadAsync(cancellationToken))
            events.Add(new WorkEvent(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3)));
        return events;
    }

    /// <summary>
    /// The work itself, in one transaction: lock the row, record <c>compute/start</c>, add 1..n, record <c>compute/stop</c>
    /// and <c>compute/result</c>, set <c>result</c> and <c>done = true</c>. Either all of it commits or none of it does, so a
    /// crashed attempt leaves no half-written history. A work already done is returned as it is (a redelivered job, which
    /// at-least-once delivery allows, changes nothing). Null when the work does not exist.
    /// </summary>
    public async Task<Work?> ComputeAsync(long workId, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        Work? work;
        await using (var select = new NpgsqlCommand(_sql.ByIdForUpdate, connection, transaction))
        {
            select.Parameters.AddWithValue("id", workId);
            work = (await ReadWorksAsync(select, cancellationToken)).SingleOrDefault();
        }
        if (work is null || work.Done) return work;

        var startedOn = Now;
        var stopwatch = Stopwatch.StartNew();
        var sum = Arithmetic.SumTo(work.AddUpTo);
        var elapsedMicroseconds = (long)stopwatch.Elapsed.TotalMicroseconds;
        var stoppedOn = Now;

        await using var batch = new NpgsqlBatch(connection, transaction);
        batch.BatchCommands.Add(Event(work.WorkCode, WorkNames.EventStart, work.AddUpTo, startedOn));
        batch.BatchCommands.Add(Event(work.WorkCode, WorkNames.EventStop, elapsedMicroseconds, stoppedOn));
        batch.BatchCommands.Add(Event(work.WorkCode, WorkNames.EventResult, sum, stoppedOn));
        var finish = new NpgsqlBatchCommand(_sql.Finish);
        finish.Parameters.AddWithValue("id", workId);
        finish.Parameters.AddWithValue("result", sum);
        finish.Parameters.AddWithValue("now", stoppedOn);
        batch.BatchCommands.Add(finish);
        Work? finished = null;
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            do
            {
                while (await reader.ReadAsync(cancellationToken)) finished = ReadWork(reader);
            }
            while (await reader.NextResultAsync(cancellationToken));
        }

        // Checkpoint: the result, done = true and the three events become visible together, here.
        await transaction.CommitAsync(cancellationToken);
        return finished;
    }

    /// <summary>Ids of API works still not done that were created at or before <paramref name="before"/> (Unix seconds).</summary>
    public async Task<IReadOnlyList<long>> PendingApiWorkAsync(long before, int limit, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_sql.PendingApiWork);
        command.Parameters.AddWithValue("before", before);
        command.Parameters.AddWithValue("limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var ids = new List<long>();
        while (await reader.ReadAsync(cancellationToken)) ids.Add(reader.GetInt64(0));
        return ids;
    }

    public async Task<bool> DeleteAsync(long id, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_sql.Delete);
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private NpgsqlBatchCommand Event(string workCode, string variable, long value, long now)
    {
        var command = new NpgsqlBatchCommand(_sql.InsertEvent);
        command.Parameters.AddWithValue("code", workCode);
        command.Parameters.AddWithValue("variable", variable);
        command.Parameters.AddWithValue("value", value.ToString(CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("now", now);
        return command;
    }

    private static async Task<List<Work>> ReadWorksAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var works = new List<Work>();
        while (await reader.ReadAsync(cancellationToken)) works.Add(ReadWork(reader));
        return works;
    }

    private static Work ReadWork(NpgsqlDataReader reader) => new(
        reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2), reader.GetBoolean(3),
        reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6));

    private static string EscapeLike(string text) =>
        text.Replace(@"\", @"\\", StringComparison.Ordinal).Replace("%", @"\%", StringComparison.Ordinal).Replace("_", @"\_", StringComparison.Ordinal);

    private static void ValidateAddUpTo(int addUpTo)
    {
        if (addUpTo is < Arithmetic.MinAddUpTo or > 1_000_000)
            throw new ArgumentOutOfRangeException(nameof(addUpTo), addUpTo, "add_up_to must be a whole number from 1 to 1000000.");
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,47}$")]
    private static partial Regex SchemaName();
}
