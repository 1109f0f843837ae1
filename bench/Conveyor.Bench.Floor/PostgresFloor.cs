using Npgsql;
using NpgsqlTypes;

namespace Conveyor.Bench.Floor;

/// <summary>PostgreSQL with the server's own durability settings, in a schema of its own that is dropped at the end.</summary>
internal static class PostgresFloor
{
    public static async Task RunAsync(string connectionString, int rows, int loops)
    {
        var schema = $"floor_{Environment.ProcessId}";
        await using var db = NpgsqlDataSource.Create(connectionString);
        string version, fsync, synchronousCommit;
        await using (var connection = await db.OpenConnectionAsync())
        {
            version = (string)(await new NpgsqlCommand("SHOW server_version", connection).ExecuteScalarAsync())!;
            fsync = (string)(await new NpgsqlCommand("SHOW fsync", connection).ExecuteScalarAsync())!;
            synchronousCommit = (string)(await new NpgsqlCommand("SHOW synchronous_commit", connection).ExecuteScalarAsync())!;
            await using var create = new NpgsqlCommand($"""
                CREATE SCHEMA {schema};
                CREATE TABLE {schema}.jobs (id bigserial PRIMARY KEY, queue text NOT NULL, state smallint NOT NULL, payload jsonb);
                CREATE INDEX jobs_ready ON {schema}.jobs (queue, id) WHERE state = 1;
                CREATE TABLE {schema}.copied (LIKE {schema}.jobs INCLUDING ALL);
                """, connection);
            await create.ExecuteNonQueryAsync();
        }
        Console.WriteLine($"PostgreSQL {version} (fsync={fsync}, synchronous_commit={synchronousCommit}), {rows:N0} rows, " +
            $"{FloorRun.RowsPerTransaction:N0} per statement and transaction, {loops} connection(s); table: bigserial key, text queue, " +
            "smallint state, jsonb payload, partial index (queue, id) WHERE state = 1");
        try
        {
            var insert = $"INSERT INTO {schema}.jobs (queue, state, payload) SELECT 'bench', 1, p FROM unnest(@payloads::jsonb[]) AS p";
            var claim = $"UPDATE {schema}.jobs SET state = 2 WHERE id = ANY(ARRAY(SELECT id FROM {schema}.jobs WHERE queue = 'bench' AND state = 1 " +
                $"ORDER BY id LIMIT {FloorRun.RowsPerTransaction} FOR UPDATE SKIP LOCKED)) RETURNING id";
            var complete = $"UPDATE {schema}.jobs SET state = 3 WHERE id = ANY(@ids)";

            var inserted = 0;
            await FloorRun.MeasureAsync("insert (unnest)", loops, async _ =>
                FloorRun.Take(ref inserted, rows) is var (from, count) && count > 0 ? await InsertAsync(db, insert, from, count) : 0);

            var copied = 0;
            await FloorRun.MeasureAsync("insert (binary COPY)", loops, async _ =>
            {
                var (from, count) = FloorRun.Take(ref copied, rows);
                if (count == 0) return 0;
                await using var connection = await db.OpenConnectionAsync();
                await using (var writer = await connection.BeginBinaryImportAsync($"COPY {schema}.copied (queue, state, payload) FROM STDIN (FORMAT BINARY)"))
                {
                    for (var n = from; n < from + count; n++)
                    {
                        await writer.StartRowAsync();
                        await writer.WriteAsync("bench", NpgsqlDbType.Text);
                        await writer.WriteAsync((short)1, NpgsqlDbType.Smallint);
                        await writer.WriteAsync($"{{\"n\":{n}}}", NpgsqlDbType.Jsonb);
                    }
                    await writer.CompleteAsync();
                }
                return count;
            });

            var claimRate = await FloorRun.MeasureAsync("claim (FOR UPDATE SKIP LOCKED, oldest first)", loops, async _ =>
            {
                await using var connection = await db.OpenConnectionAsync();
                await using var command = new NpgsqlCommand(claim, connection);
                var claimed = 0;
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync()) claimed++;
                return claimed;
            });

            var updated = 0;
            var updateRate = await FloorRun.MeasureAsync("update by id (= ANY of 1,000 ids)", loops, async _ =>
            {
                var (from, count) = FloorRun.Take(ref updated, rows);
                if (count == 0) return 0;
                await using var connection = await db.OpenConnectionAsync();
                await using var command = new NpgsqlCommand(complete, connection);
                command.Parameters.AddWithValue("ids", Enumerable.Range(from, count).Select(id => (long)id).ToArray());
                return await command.ExecuteNonQueryAsync();
            });
            Console.WriteLine($"  {"claim and update by id, combined",-48} {FloorRun.Combined(claimRate, updateRate),10:N0} rows/s  (one after the other for every row, computed)");

            // As a worker does: claim 1,000, then complete exactly those, in two transactions.
            var refill = 0;
            while (FloorRun.Take(ref refill, rows) is var (from, count) && count > 0) await InsertAsync(db, insert, rows + from, count);
            await FloorRun.MeasureAsync("claim, then update those by id (a worker's cycle)", loops, async _ =>
            {
                await using var connection = await db.OpenConnectionAsync();
                var ids = new List<long>(FloorRun.RowsPerTransaction);
                await using (var command = new NpgsqlCommand(claim, connection))
                await using (var reader = await command.ExecuteReaderAsync())
                {
                    while (await reader.ReadAsync()) ids.Add(reader.GetInt64(0));
                }
                if (ids.Count == 0) return 0;
                await using var done = new NpgsqlCommand(complete, connection);
                done.Parameters.AddWithValue("ids", ids.ToArray());
                return await done.ExecuteNonQueryAsync();
            });

            await using var single = await db.OpenConnectionAsync();
            await using var one = new NpgsqlCommand($"INSERT INTO {schema}.jobs (queue, state, payload) VALUES ('latency', 0, '{{}}')", single);
            await FloorRun.CommitLatencyAsync("one-row commit", _ => one.ExecuteNonQueryAsync());
        }
        finally
        {
            await using var connection = await db.OpenConnectionAsync();
            await using var drop = new NpgsqlCommand($"DROP SCHEMA {schema} CASCADE", connection);
            await drop.ExecuteNonQueryAsync();
        }
    }

    private static async Task<int> InsertAsync(NpgsqlDataSource db, string sql, int from, int count)
    {
        await using var connection = await db.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("payloads", Enumerable.Range(from, count).Select(n => $"{{\"n\":{n}}}").ToArray());
        return await command.ExecuteNonQueryAsync();
    }
}
