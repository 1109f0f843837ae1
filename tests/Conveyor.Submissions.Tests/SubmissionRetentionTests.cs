using Conveyor.Server;
using Conveyor.Server.Submissions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Conveyor.Submissions.Tests;

/// <summary>max_submission_age on a running server: finished submissions older than it go, unfinished ones stay.</summary>
public sealed class SubmissionRetentionTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Finished_submissions_older_than_the_max_age_are_deleted_with_their_chunks(bool postgres)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await SubmissionServer.StartAsync(postgres, o => new ServerOptions
        {
            Port = o.Port,
            DataDirectory = o.DataDirectory,
            PostgresConnectionString = o.PostgresConnectionString,
            PostgresSchema = o.PostgresSchema,
            Out = null,
            TimeProvider = time,
            MaxSubmissionAge = TimeSpan.FromHours(1),
        });
        var queue = SubmissionServer.UniqueQueue("retention");
        var (_, finished) = await server.Post("/v1/submissions", $$"""{"queue":"{{queue}}","chunks":[]}""");
        var (_, running) = await server.Post("/v1/submissions", $$"""{"queue":"{{queue}}","chunks":[{"data":1}]}""");
        time.Advance(TimeSpan.FromMinutes(30));
        await server.Services.GetRequiredService<SubmissionRetentionSweeper>().SweepAsync(CancellationToken.None);
        Assert.Equal(200, (await server.Get($"/v1/submissions/{finished!["id"]}")).Status);

        time.Advance(TimeSpan.FromHours(1));
        await server.Services.GetRequiredService<SubmissionRetentionSweeper>().SweepAsync(CancellationToken.None);
        // The server's own sweep may be deleting it at the same moment (the clock moved for it too): wait for its commit.
        await SubmissionServer.Eventually(async () => (await server.Get($"/v1/submissions/{finished!["id"]}")).Status == 404, "the old submission to be deleted");
        Assert.Equal(200, (await server.Get($"/v1/submissions/{running!["id"]}")).Status);
    }
}
