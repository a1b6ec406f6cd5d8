import MobileDRKit
import PhotosUI
import SwiftUI
import UIKit

/// Pick or capture a fundus photograph; show the prediction, the calibrated probability, the heatmap
/// over the crop the model saw, and the OOD / quality verdict. The model work is `ScreeningModel`'s.
@MainActor
struct ScreeningView: View {
    @State private var model: ScreeningModel?
    @State private var status = "Loading the model…"
    @State private var verdict = ""
    @State private var details = ""
    @State private var overlay: CGImage?
    @State private var selection: PhotosPickerItem?
    @State private var showCamera = false

    var body: some View {
        ScrollView {
            VStack(alignment: .leading, spacing: 16) {
                HStack {
                    PhotosPicker("Pick photo", selection: $selection, matching: .images).buttonStyle(.borderedProminent)
                    Button("Take photo") { showCamera = true }
                        .buttonStyle(.bordered)
                        .disabled(!UIImagePickerController.isSourceTypeAvailable(.camera))
                }
                if let overlay {
                    Image(decorative: overlay, scale: 1).resizable().interpolation(.none).scaledToFit()
                        .accessibilityLabel("The crop the model saw, with its heatmap")
                }
                Text(verdict).font(.title3).bold()
                Text(details).font(.callout)
                Text(status).font(.footnote).foregroundStyle(.secondary)
            }
            .padding()
        }
        .task { await openModel() }
        .onChange(of: selection) { _, item in
            guard let item else { return }
            Task {
                if let data = try? await item.loadTransferable(type: Data.self) { await analyse { try Images.decode(data: data) } }
            }
        }
        .sheet(isPresented: $showCamera) {
            CameraPicker { image in Task { await analyse { try Images.rgb(image) } } }.ignoresSafeArea()
        }
    }

    /// Documents/bundle (copied with Finder, the Files app or `xcrun devicectl device copy to`), else a
    /// `bundle` folder reference built into the app.
    private func openModel() async {
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("bundle")
        let bundled = Bundle.main.url(forResource: "bundle", withExtension: nil)
        let folder = FileManager.default.fileExists(atPath: documents.appendingPathComponent("manifest.json").path) ? documents : bundled
        guard let folder else {
            status = "No bundle: copy one to the app's Documents/bundle (see README.md)."
            return
        }
        do {
            let opened = try await ScreeningModel.open(bundle: folder)
            model = opened
            status = "Ready: \(opened.manifest.model.name), \(opened.artifact.file) on \(opened.artifact.runtime). Research harness, not a medical device."
        } catch {
            status = "Cannot open the bundle: \(error)"
        }
    }

    private func analyse(_ decode: () throws -> RGBImage) async {
        guard let model else { verdict = "No model loaded."; return }
        verdict = "Analysing…"
        details = ""
        do {
            let photo = try decode()
            let result = try await Task.detached(priority: .userInitiated) { try model.screen(photo) }.value // off the main thread
            overlay = result.heatmap.flatMap { Images.heatmapOverlay(crop: result.crop.image, heatmap: $0) } ?? Images.cgImage(result.crop.image)
            show(result)
        } catch let rejected as ImageRejected {
            overlay = nil
            verdict = "Ungradable photograph: \(rejected.reason). Retake it with the whole fundus disc in frame."
        } catch {
            verdict = "Screening failed: \(error)"
        }
    }

    private func show(_ result: Screening) {
        let p = result.prediction
        if !result.gradable {
            verdict = "Out of distribution: do not grade. Refer for a manual read."
        } else if let refer = p.refer {
            verdict = refer ? "Refer: \(p.label)" : "No referral: \(p.label)"
        } else {
            verdict = "Predicted: \(p.label)"
        }
        var lines = [p.threshold.map { String(format: "Calibrated probability %.3f (operating threshold %.3f)", p.probability, $0) }
            ?? String(format: "Calibrated probability %.3f", p.probability)]
        if let ood = result.ood { lines.append(String(format: "Familiarity (OOD) score %.3f; below %.3f means out of distribution", ood.score, ood.threshold)) }
        details = lines.joined(separator: "\n")
    }
}
