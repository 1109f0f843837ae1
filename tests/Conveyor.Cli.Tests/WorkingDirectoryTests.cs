namespace Conveyor.Cli.Tests;

/// <summary><c>conveyor serve</c> in a folder of its own: the folder's files neither configure the server nor get watched.</summary>
public sealed class WorkingDirectoryTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("conveyor-cli-cwd-").FullName;

    [Fact]
    public async Task Serve_ignores_an_appsettings_json_and_watches_no_files_under_its_working_directory()
    {
        // Any host that read this file would refuse to start ("Failed to load configuration from file").
        await File.WriteAllTextAsync(Path.Combine(_folder, "appsettings.json"), "{ not json");
        // Where the default ./conveyor-data would be: every database write lands under the working directory.
        var data = Path.Combine(_folder, "conveyor-data");

        await using var server = await ConveyorProcess.StartServerAsync(data, _folder);
        var enqueued = await ConveyorProcess.RunAsync(["enqueue", "cwd", "--kind", "k", "--server", server.BaseAddress]);
        Assert.Equal(0, enqueued.ExitCode);

        if (OperatingSystem.IsLinux())
        {
            // A file watcher holds an inotify descriptor (the host's config reload watched the whole tree with one).
            var watchers = Directory.GetFiles($"/proc/{server.ProcessId}/fd")
                .Select(fd => new FileInfo(fd).LinkTarget)
                .Where(target => target is not null && target.Contains("inotify", StringComparison.Ordinal))
                .ToList();
            Assert.Empty(watchers);
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp directory must not fail the test.
        }
    }
}
